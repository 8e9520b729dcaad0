/* The listening socket both C reference servers start with: HOST PORT from the command line,
 * SO_REUSEADDR, a SOMAXCONN backlog, and the "listening on HOST:PORT (MODEL)" line the
 * benchmark waits for (port 0: the kernel picks one). Exits on any failure. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

static int listen_from_args(int argc, char **argv, const char *model) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        exit(2);
    }
    int one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
    socklen_t len = sizeof addr;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0 || inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, SOMAXCONN) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &len) < 0) {
        perror("listen");
        exit(1);
    }
    fprintf(stderr, "listening on %s:%d (%s)\n", argv[1], ntohs(addr.sin_port), model);
    return lfd;
}
