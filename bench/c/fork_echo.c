/* The minimal correct C forking echo server: the reference row "c-fork" of python -m bench.
 *   fork_echo HOST PORT
 * accept, fork, the child echoes until EOF (partial writes and EINTR handled) and _exits,
 * the parent closes its copy; SIGCHLD reaps with a waitpid(WNOHANG) loop. Built at bench
 * time, never shipped. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "listen.h"

static void reap(int sig) {
    int saved = errno;
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int echo(int fd) {
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0) return 0;
        if (n < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR) continue;
                return 1;
            }
            off += w;
        }
    }
}

int main(int argc, char **argv) {
    int one = 1;
    int lfd = listen_from_args(argc, argv, "c fork server");
    struct sigaction sa = {.sa_handler = reap, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    for (;;) {
        int cfd = accept(lfd, NULL, NULL);
        if (cfd < 0) {
            if (errno != EINTR) perror("accept");
            continue;
        }
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);
            _exit(echo(cfd));
        }
        if (pid < 0) perror("fork");
        close(cfd);
    }
}
