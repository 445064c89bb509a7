/* echo.c - a TCP echo server: one coroutine per connection (May's echo.rs).
 *
 *   echo [port [seconds]]     port 8080 by default; seconds > 0: stop then
 *                             (port may also be "host:port", e.g.
 *                             127.0.0.1:8080 to listen on loopback only)
 *
 * The accept loop is a coroutine; each connection gets its own coroutine
 * that reads and writes back until the peer closes.  tests/test_io_echo.c
 * includes this file (ECHO_NO_MAIN) to run the same code in-process. */
#include "may.h"
#include "usage.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The read buffer: make it larger than the messages the peers send.  A read
 * that returns less than it asked for has drained the socket, so the next
 * may_tcp_read parks at once instead of making a recv that can only say
 * "nothing yet" (docs/IO.md, "Drained sockets"); a read that fills the buffer
 * proves nothing, so with 4 KiB messages a 4 KiB buffer costs a second recv
 * per message.  16 KiB reads messages up to 16 KiB with one recv each, and
 * 64 KiB measured no better (docs/BENCHMARKS.md, "Echo: the read buffer").
 * It comes from the heap, one per connection, since a much larger one would
 * not fit the 64 KiB coroutine stack; bench/echo.sh builds other sizes with
 * -DECHO_BUF=N. */
#ifndef ECHO_BUF
#define ECHO_BUF 16384
#endif

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *buf = malloc(ECHO_BUF);
    while (buf) {
        ssize_t n = may_tcp_read(fd, buf, ECHO_BUF, MAY_FOREVER);
        if (n <= 0 || may_tcp_write_all(fd, buf, (size_t)n, MAY_FOREVER) < 0)
            break;
    }
    free(buf);
    may_tcp_close(fd);
    return NULL;
}

/* The accept loop: runs until cancelled.  arg: the listening fd. */
static void *echo_serve(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = may_tcp_accept(lfd, NULL, MAY_FOREVER);
        if (fd == -ECANCELED)
            break;
        if (fd < 0)
            continue; /* e.g. -EMFILE after its backoff: try again */
        may_tcp_set_nodelay(fd, true);
        if (may_go(echo_conn, (void *)(intptr_t)fd) < 0)
            may_tcp_close(fd);
    }
    return NULL;
}

#ifndef ECHO_NO_MAIN
static const char usage[] =
    "usage: echo [port [seconds]]\n"
    "  port     port to listen on, every address (default 8080; 0: any free port),\n"
    "           or host:port, e.g. 127.0.0.1:8080 for loopback only\n"
    "  seconds  stop after this many seconds (default 0: run until killed)\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 2, usage);
    char addr[128];
    const char *port = argc > 1 ? argv[1] : "8080";
    if (!strchr(port, ':'))
        usage_long(port, 0, 65535, usage);
    snprintf(addr, sizeof addr, "%s%s", strchr(port, ':') ? "" : ":", port);
    int seconds = argc > 2 ? (int)usage_long(argv[2], 0, 1000000000, usage) : 0;
    int lfd = may_tcp_listen(addr, 1024, 0);
    if (lfd < 0) {
        fprintf(stderr, "echo: listen %s: error %d\n", addr, -lfd);
        return 1;
    }
    printf("echo: listening on port %d\n", may_tcp_local_port(lfd));
    fflush(stdout);
    may_co_t *srv;
    if (may_spawn(&srv, echo_serve, (void *)(intptr_t)lfd, NULL) < 0)
        return 1;
    if (seconds > 0) {
        may_sleep((int64_t)seconds * 1000000000);
        may_cancel(srv);
    }
    may_join(srv, NULL, MAY_FOREVER);
    may_tcp_close(lfd);
    printf("echo: done\n");
    return 0;
}
#endif
