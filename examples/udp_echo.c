/* udp_echo.c - a UDP echo server: several coroutines serve one socket (May's
 * echo_udp.rs).
 *
 *   udp_echo [port [seconds]]   port 8080 by default, every address (or
 *                               "host:port", e.g. 127.0.0.1:8080 for
 *                               loopback only); seconds > 0: stop then
 *
 * UDP has no connections to hand out, so there is no accept loop: one
 * coroutine per worker waits in may_udp_recvfrom on the same socket, and
 * each sends what it received back to where it came from.  A datagram that
 * arrives wakes the waiting coroutines (not their threads); one of them
 * gets it, the others find nothing and wait again.  tests/test_udp_echo.c
 * includes this file (UDP_ECHO_NO_MAIN) to run the same code in-process. */
#include "may.h"
#include "usage.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sys/socket.h> /* (may.h has Winsock on Windows) */
#endif

/* A server coroutine: echoes datagrams until cancelled.  arg: the socket.
 * 64 KiB holds any UDP datagram, so none is cut short; it lives on the
 * heap, since the coroutine's whole stack is 64 KiB. */
static void *udp_echo_serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *buf = malloc(65536);
    while (buf) {
        struct sockaddr_storage from;
        socklen_t fromlen;
        ssize_t n = may_udp_recvfrom(fd, buf, 65536, &from, &fromlen, MAY_FOREVER);
        if (n == -ECANCELED || n == -EBADF)
            break;
        if (n >= 0) /* else e.g. -ENOMEM: try again */
            may_udp_sendto(fd, buf, (size_t)n, (struct sockaddr *)&from, fromlen, MAY_FOREVER);
    }
    free(buf);
    return NULL;
}

#ifndef UDP_ECHO_NO_MAIN
static const char usage[] =
    "usage: udp_echo [port [seconds]]\n"
    "  port     port to listen on, every address (default 8080; 0: any free port),\n"
    "           or host:port, e.g. 127.0.0.1:8080 for loopback only\n"
    "  seconds  stop after this many seconds (default 0: run until killed)\n"
    "Try it: echo hello | nc -u -q1 127.0.0.1 8080\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 2, usage);
    char addr[128];
    const char *port = argc > 1 ? argv[1] : "8080";
    if (!strchr(port, ':'))
        usage_long(port, 0, 65535, usage);
    snprintf(addr, sizeof addr, "%s%s", strchr(port, ':') ? "" : ":", port);
    int seconds = argc > 2 ? (int)usage_long(argv[2], 0, 1000000000, usage) : 0;
    int fd = may_udp_bind(addr);
    if (fd < 0) {
        fprintf(stderr, "udp_echo: bind %s: %s\n", addr, strerror(-fd));
        return 1;
    }
    printf("udp_echo: listening on port %d (%d coroutines)\n", may_tcp_local_port(fd),
           may_workers());
    fflush(stdout);
    /* The scope owns the servers: freeing it cancels and joins them. */
    may_scope_t *scope;
    if (may_scope_new(&scope) < 0)
        return 1;
    for (int i = 0; i < may_workers(); i++)
        if (may_scope_spawn(scope, udp_echo_serve, (void *)(intptr_t)fd, NULL) < 0)
            return 1;
    if (seconds > 0)
        may_sleep((int64_t)seconds * 1000000000);
    else
        may_scope_wait(scope, MAY_FOREVER); /* until killed */
    may_scope_free(scope);
    may_fd_close(fd);
    printf("udp_echo: done\n");
    return 0;
}
#endif
