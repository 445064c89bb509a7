/* echo.c - a TCP echo server: one coroutine per connection (May's echo.rs),
 * with a graceful shutdown.
 *
 *   echo [port [seconds]]     port 8080 by default; seconds > 0: stop then
 *                             (port may also be "host:port", e.g.
 *                             127.0.0.1:8080 to listen on loopback only)
 *
 * The accept loop is a coroutine; each connection gets its own coroutine
 * that reads and writes back until the peer closes.  On SIGINT or SIGTERM
 * (a signal watcher, docs/SIGNALS.md), or when the seconds are up, main
 * stops the accept loop, gives the open connections ECHO_GRACE_MS
 * (environment; default 5000) to finish, cancels those still open, prints
 * a summary and exits 0.  tests/test_echo_shutdown.c runs it so;
 * tests/test_io_echo.c and test_io_many.c include this file (ECHO_NO_MAIN)
 * to run the server's code in-process. */
#include "may.h"
#include "usage.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
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

/* The open connections: counted by a wait group (main waits for them to
 * finish) and listed (main cancels those left when the grace period is
 * over).  A connection lists itself when it starts and unlists itself
 * before it ends, so every handle on the list is a live coroutine's.  The
 * lock is held for a few instructions and never across a wait, so it is a
 * pthread mutex: may_mutex_lock could fail with -ECANCELED in a cancelled
 * connection, which must still unlist itself. */
struct conn {
    may_co_t *co;
    struct conn *next, **pprev;
};
static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *conns;        /* the started connections */
static long conns_open;           /* accepted and not yet ended */
static long conns_served;         /* accepted in all */
static bool conns_closed;         /* the rest were cancelled: a latecomer quits */
static may_wg_t *conns_wg;        /* counts conns_open, to wait on */
static may_once_t conns_once = MAY_ONCE_INIT;

static void conns_init(void *arg)
{
    (void)arg;
    if (may_wg_new(&conns_wg) < 0)
        abort();
}

/* Count a connection in (+1: accepted) or out (-1: ended). */
static void conns_count(int delta)
{
    pthread_mutex_lock(&conns_lock);
    conns_open += delta;
    conns_served += delta > 0;
    pthread_mutex_unlock(&conns_lock);
    if (delta > 0)
        may_wg_add(conns_wg, 1);
    else
        may_wg_done(conns_wg);
}

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct conn self = { .co = may_self() };
    pthread_mutex_lock(&conns_lock);
    bool quit = conns_closed;
    if (!quit) {
        if ((self.next = conns))
            conns->pprev = &self.next;
        self.pprev = &conns;
        conns = &self;
    }
    pthread_mutex_unlock(&conns_lock);
    char *buf = quit ? NULL : malloc(ECHO_BUF);
    while (buf) {
        ssize_t n = may_tcp_read(fd, buf, ECHO_BUF, MAY_FOREVER);
        if (n <= 0 || may_tcp_write_all(fd, buf, (size_t)n, MAY_FOREVER) < 0)
            break; /* closed by the peer, an error, or -ECANCELED */
    }
    free(buf);
    may_tcp_close(fd);
    pthread_mutex_lock(&conns_lock);
    if (!quit && (*self.pprev = self.next))
        self.next->pprev = self.pprev;
    pthread_mutex_unlock(&conns_lock);
    conns_count(-1);
    return NULL;
}

/* The accept loop: runs until cancelled.  arg: the listening fd. */
static void *echo_serve(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    may_once(&conns_once, conns_init, NULL);
    for (;;) {
        int fd = may_tcp_accept(lfd, NULL, MAY_FOREVER);
        if (fd == -ECANCELED)
            break;
        if (fd < 0)
            continue; /* e.g. -EMFILE after its backoff: try again */
        may_tcp_set_nodelay(fd, true);
        conns_count(+1);
        if (may_go(echo_conn, (void *)(intptr_t)fd) < 0) {
            conns_count(-1);
            may_tcp_close(fd);
        }
    }
    return NULL;
}

#ifndef ECHO_NO_MAIN
static const char usage[] =
    "usage: echo [port [seconds]]\n"
    "  port     port to listen on, every address (default 8080; 0: any free port),\n"
    "           or host:port, e.g. 127.0.0.1:8080 for loopback only\n"
    "  seconds  stop after this many seconds (default 0: run until SIGINT/SIGTERM)\n"
    "Stopping, it waits up to $ECHO_GRACE_MS ms (default 5000) for the open\n"
    "connections to end, then cancels the rest.\n";

/* Cancel every connection still open (one not yet started quits at its
 * start); returns how many that is. */
static long cancel_conns(void)
{
    pthread_mutex_lock(&conns_lock);
    conns_closed = true;
    for (struct conn *c = conns; c; c = c->next)
        may_cancel(c->co);
    long n = conns_open;
    pthread_mutex_unlock(&conns_lock);
    return n;
}

int main(int argc, char **argv)
{
    usage_check(argc, argv, 2, usage);
    char addr[128];
    const char *port = argc > 1 ? argv[1] : "8080";
    if (!strchr(port, ':'))
        usage_long(port, 0, 65535, usage);
    snprintf(addr, sizeof addr, "%s%s", strchr(port, ':') ? "" : ":", port);
    int seconds = argc > 2 ? (int)usage_long(argv[2], 0, 1000000000, usage) : 0;
    const char *g = getenv("ECHO_GRACE_MS");
    long grace_ms = g ? usage_long(g, 0, 1000000000, usage) : 5000;
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line as it is printed, even to a pipe */

    /* Watch before anything runs: from here on SIGINT and SIGTERM are
     * events, queued until main takes them. */
    int sigs[] = { SIGINT, SIGTERM };
    may_signal_t *stop;
    int r = may_signal_new(&stop, sigs, 2, 0);
    if (r < 0) {
        fprintf(stderr, "echo: signals: error %d\n", -r);
        return 1;
    }
    int lfd = may_tcp_listen(addr, 1024, 0);
    if (lfd < 0) {
        fprintf(stderr, "echo: listen %s: error %d\n", addr, -lfd);
        return 1;
    }
    printf("echo: listening on port %d\n", may_tcp_local_port(lfd));
    may_once(&conns_once, conns_init, NULL); /* conns_wg, even if srv never runs */
    may_co_t *srv;
    if (may_spawn(&srv, echo_serve, (void *)(intptr_t)lfd, NULL) < 0)
        return 1;

    int sig = may_signal_wait(stop, seconds > 0 ? may_deadline_in(seconds * 1000000000LL)
                                                : MAY_FOREVER);
    may_cancel(srv); /* stop accepting; new connections are refused */
    may_join(srv, NULL, MAY_FOREVER);
    may_tcp_close(lfd);
    pthread_mutex_lock(&conns_lock);
    long open = conns_open;
    pthread_mutex_unlock(&conns_lock);
    printf("echo: %s: stopped accepting; %ld connections open, %ld ms to finish\n",
           sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "time is up", open,
           grace_ms);

    long cancelled = 0;
    if (may_wg_wait(conns_wg, may_deadline_in(grace_ms * 1000000)) == -ETIMEDOUT)
        cancelled = cancel_conns();
    may_wg_wait(conns_wg, MAY_FOREVER); /* the cancelled ones end at once */
    pthread_mutex_lock(&conns_lock);
    long served = conns_served;
    pthread_mutex_unlock(&conns_lock);
    printf("echo: done: %ld connections served, %ld finished after the stop, %ld cancelled\n",
           served, open - cancelled, cancelled);
    may_signal_free(stop);
    return 0;
}
#endif
