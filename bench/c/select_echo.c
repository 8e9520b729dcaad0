/* The minimal correct C select() echo server: the reference row "c-select" of python -m bench.
 *   select_echo HOST PORT
 * One process, non-blocking sockets, fresh copies of the fd_set each round; what a socket
 * does not take waits in that client's buffer, and the client is not read until it is out.
 * A descriptor past FD_SETSIZE is closed at once (select() cannot watch it). Built at bench
 * time, never shipped. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen.h"

#define BUF 65536
static char *buf[FD_SETSIZE];
static size_t off[FD_SETSIZE], len[FD_SETSIZE];

static void drop(int fd, fd_set *all) {
    FD_CLR(fd, all);
    close(fd);
    free(buf[fd]);
    buf[fd] = NULL;
    len[fd] = off[fd] = 0;
}

int main(int argc, char **argv) {
    int one = 1;
    int lfd = listen_from_args(argc, argv, "c select server");
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    fd_set readers, writers;
    FD_ZERO(&readers);
    FD_ZERO(&writers);
    FD_SET(lfd, &readers);
    int maxfd = lfd;
    for (;;) {
        fd_set r = readers, w = writers; /* select() overwrites its sets: fresh copies */
        int ready = select(maxfd + 1, &r, &w, NULL, NULL);
        if (ready < 0) {
            if (errno == EINTR) continue;
            perror("select");
            return 1;
        }
        if (FD_ISSET(lfd, &r)) {
            int cfd;
            while ((cfd = accept(lfd, NULL, NULL)) >= 0) {
                if (cfd >= FD_SETSIZE) {
                    close(cfd);
                    continue;
                }
                fcntl(cfd, F_SETFL, O_NONBLOCK);
                setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                buf[cfd] = malloc(BUF);
                if (!buf[cfd]) {
                    close(cfd);
                    continue;
                }
                FD_SET(cfd, &readers);
                if (cfd > maxfd) maxfd = cfd;
            }
        }
        for (int fd = 0; fd <= maxfd; fd++) {
            if (fd == lfd || !buf[fd]) continue;
            if (FD_ISSET(fd, &r) && len[fd] == 0) {
                ssize_t n = read(fd, buf[fd], BUF);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                    drop(fd, &readers);
                    continue;
                }
                if (n > 0) {
                    off[fd] = 0;
                    len[fd] = (size_t)n;
                }
            }
            if (len[fd] > 0 && (FD_ISSET(fd, &r) || FD_ISSET(fd, &w))) {
                ssize_t n = write(fd, buf[fd] + off[fd], len[fd] - off[fd]);
                if (n < 0 && errno != EAGAIN && errno != EINTR) {
                    FD_CLR(fd, &writers);
                    drop(fd, &readers);
                    continue;
                }
                if (n > 0) off[fd] += (size_t)n;
                if (off[fd] == len[fd]) {
                    len[fd] = off[fd] = 0;
                    FD_CLR(fd, &writers);
                    FD_SET(fd, &readers);
                } else {
                    FD_SET(fd, &writers);
                    FD_CLR(fd, &readers);
                }
            }
        }
    }
}
