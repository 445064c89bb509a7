/* http.c - an HTTP/1.1 server: may's version of may_minihttp.
 *
 *   http [port [seconds]]   port 8080 by default, 127.0.0.1 only;
 *                           seconds > 0: stop after that long
 *
 * Routes (as in the TechEmpower benchmarks):
 *   /plaintext  200 text/plain        "Hello, World!" (13 bytes)
 *   /json       200 application/json  {"message":"Hello, World!"}
 *   /sleep?ms=N 200 text/plain        the request's URL, after waiting N ms
 *               (at most 10 000) in the connection's coroutine: a slow
 *               request for tests/real/real_curl.c.  Only in this program
 *               (main turns it on), not where http.c is included.
 *   otherwise   404; a request the parser rejects gets 400 and a close,
 *               and so does an Upgrade or CONNECT request (instead of its
 *               route's answer: what follows it is not HTTP).
 * The query string is ignored; HEAD gets the headers only.
 *
 * Design:
 * - One coroutine per connection (spawned detached by the accept loop), with
 *   a streaming parser on its stack and, only while it has requests to read
 *   and answer, a 16 KiB read buffer and a 16 KiB output buffer from the
 *   heap: after a short read (the socket is drained) it frees them and
 *   waits with may_fd_wait, which costs no system call after a short read
 *   (docs/IO.md, "Drained sockets").  An idle connection so costs about one
 *   page.  A connection idle for HTTP_IDLE_S seconds is closed.
 * - Parsing is llhttp, node's HTTP parser and the maintained successor of
 *   http_parser (Debian's node-llhttp ships its C sources; CMake compiles
 *   them into this example and its test only, never into libmay).  It is
 *   incremental, so a request split over several reads is fine and a read
 *   holding many requests (pipelining) produces all their responses in one
 *   pass.  It sets no limit on the size of a request head, so the callbacks
 *   count it: over HTTP_HEAD_MAX bytes of request line and headers is a
 *   400 (http_parser's own limit was the same 80 KiB).
 * - Pipelining: every request completed by one read is answered into the
 *   output buffer, which is sent with ONE write after the read's bytes are
 *   parsed (a buffer that fills up mid-batch is flushed early; a response is
 *   under 256 bytes, so that takes over 60 requests in one read).
 * - Keep-alive is the default for HTTP/1.1; "Connection: close", or HTTP/1.0
 *   without keep-alive, ends the connection after that response (the
 *   response says "Connection: close"; later pipelined requests are
 *   dropped).  A parse error answers 400 after the responses of the
 *   requests before it, then closes.  Closing is a lingering close:
 *   shutdown(SHUT_WR), then read until EOF (at most HTTP_LINGER_MS) so the
 *   response is not destroyed by a reset from unread input.
 * - Date header: a clock coroutine formats it once a second into a seqlock
 *   (atomic words, so readers on other workers never race with it); each
 *   response copies the 29 bytes.
 * - The JSON body is a constant (TechEmpower asks for a serialization per
 *   request; may_minihttp does one with serde; here it would be a snprintf).
 *
 * tests/test_http.c includes this file with HTTP_NO_MAIN (and
 * HTTP_TEST_HOOKS, which counts the server's reads and writes) and runs the
 * server in-process; bench/http.sh measures it against Go net/http, a raw Go
 * server and nginx (docs/BENCHMARKS.md "### HTTP").  examples/https.c
 * includes it too, with the HTTP_IO_* hooks below defined to run each
 * connection over TLS, and fuzz/fuzz_http.c with them and the HTTP_SOCK_*
 * hooks pointed at memory. */
#include "may.h"
#include "usage.h"

#include <errno.h>
#include <llhttp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define HTTP_IDLE_S 60          /* close a keep-alive connection idle this long */
#define HTTP_LINGER_MS 1000     /* drain input this long at most when closing */
#define HTTP_RBUF 16384
#define HTTP_WBUF 16384
#define HTTP_URL_MAX 256        /* longer URLs are kept truncated (so: 404) */
#define HTTP_HEAD_MAX (80 * 1024) /* longest request line + headers (else 400) */
#define HTTP_RESP_MAX 256       /* upper bound of one response */
#define HTTP_DATE_LEN 29        /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* Transport hooks (c: the http_conn_t *; c->io is free for the transport).
 * Plain TCP unless the includer defines them (examples/https.c: TLS). */
#ifndef HTTP_IO_READ
#define HTTP_IO_READ(c, buf, n, dl) may_tcp_read((c)->fd, buf, n, dl)
#define HTTP_IO_WRITE_ALL(c, buf, n, dl) may_tcp_write_all((c)->fd, buf, n, dl)
#define HTTP_IO_BEGIN(c) 0          /* after accept: 0, or < 0 to drop it */
#define HTTP_IO_SHUTDOWN(c) ((void)0) /* before a lingering close */
#define HTTP_IO_END(c) ((void)0)    /* after the fd was closed */
/* Wait until a request may be there, holding no buffers: > 0 go on, < 0
 * (timeout, cancel, closed) close the connection.  The readiness is a hint,
 * as poll(2)'s is: the read after it does not wait (HTTP_IO_WAITS). */
#define HTTP_IO_WAIT(c, dl) may_fd_wait((c)->fd, MAY_READ, dl)
#define HTTP_IO_WAITS 1
#endif
#ifndef HTTP_IO_WAITS /* a transport with its own buffering: just read */
#define HTTP_IO_WAIT(c, dl) 1
#define HTTP_IO_WAITS 0
#endif
/* The socket under the transport, for the lingering close (which reads
 * raw bytes past the transport) and the final close.  TCP unless the
 * includer defines them (fuzz/fuzz_http.c: an in-memory connection). */
#ifndef HTTP_SOCK_CLOSE
#define HTTP_SOCK_READ(c, buf, n, dl) may_tcp_read((c)->fd, buf, n, dl)
#define HTTP_SOCK_SHUTDOWN(c, how) may_tcp_shutdown((c)->fd, how)
#define HTTP_SOCK_CLOSE(c) may_tcp_close((c)->fd)
#endif

#ifdef HTTP_TEST_HOOKS
static atomic_long http_nreads, http_nwrites; /* reads with data / flushes */
static atomic_long http_nbufs;                /* connections holding buffers */
#define HTTP_COUNT(c) atomic_fetch_add_explicit(&(c), 1, memory_order_relaxed)
#define HTTP_BUFS(d) atomic_fetch_add_explicit(&http_nbufs, d, memory_order_relaxed)
#else
#define HTTP_COUNT(c) ((void)0)
#define HTTP_BUFS(d) ((void)0)
#endif

/* ---- Date header: one writer (the clock coroutine), a seqlock ---------- */

static atomic_uint http_date_seq;
static _Atomic uint64_t http_date_words[4]; /* 32 bytes >= HTTP_DATE_LEN */

static void http_date_update(void)
{
    char s[32] = { 0 };
    struct tm tm;
    time_t now = time(NULL);
    strftime(s, sizeof s, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
    uint64_t w[4];
    memcpy(w, s, sizeof w);
    unsigned q = atomic_load_explicit(&http_date_seq, memory_order_relaxed);
    atomic_store_explicit(&http_date_seq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < 4; i++)
        atomic_store_explicit(&http_date_words[i], w[i], memory_order_relaxed);
    atomic_store_explicit(&http_date_seq, q + 2, memory_order_release);
}

/* Copy the current date (HTTP_DATE_LEN bytes, no NUL) to out. */
static void http_date_copy(char *out)
{
    uint64_t w[4];
    unsigned q1, q2;
    do {
        q1 = atomic_load_explicit(&http_date_seq, memory_order_acquire);
        for (int i = 0; i < 4; i++)
            w[i] = atomic_load_explicit(&http_date_words[i], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        q2 = atomic_load_explicit(&http_date_seq, memory_order_relaxed);
    } while (q1 != q2 || (q1 & 1));
    memcpy(out, w, HTTP_DATE_LEN);
}

static void *http_clock(void *arg)
{
    (void)arg;
    for (;;) {
        http_date_update();
        /* sleep to just past the next second boundary */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        if (may_sleep(1000000000LL - ts.tv_nsec + 1000000) == -ECANCELED)
            return NULL;
    }
}

/* ---- One connection ----------------------------------------------------- */

/* The buffers, held only while requests are being read and answered: an
 * idle keep-alive connection keeps just its header (on its coroutine's
 * stack) and costs about one page. */
typedef struct http_bufs {
    char rbuf[HTTP_RBUF];
    char wbuf[HTTP_WBUF];
} http_bufs_t;

typedef struct http_conn {
    int fd;
    void *io;              /* transport state (HTTP_IO_*), NULL for TCP */
    bool close;            /* answer no more requests: close after the flush */
    bool failed;           /* a write failed: drop the connection */
    bool head;             /* the current request is HEAD */
    size_t url_len;
    size_t head_len;       /* bytes of the current request's head so far */
    size_t wlen;
    http_bufs_t *b;        /* NULL while idle */
    llhttp_t parser;
    char url[HTTP_URL_MAX];
} http_conn_t;

#define LIT(s) s, sizeof(s) - 1

static inline char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static void http_flush(http_conn_t *c)
{
    if (c->wlen == 0 || c->failed)
        return;
    HTTP_COUNT(http_nwrites); /* before: the peer may look once it has the bytes */
    if (HTTP_IO_WRITE_ALL(c, c->b->wbuf, c->wlen, may_deadline_in(HTTP_IDLE_S * 1000000000LL)) < 0)
        c->failed = true;
    c->wlen = 0;
}

/* Append one response: status is "200 OK" etc, hdrs the Content-Type and
 * Content-Length lines. */
static void http_respond(http_conn_t *c, const char *status, size_t status_n,
                         const char *hdrs, size_t hdrs_n, const char *body, size_t body_n)
{
    if (HTTP_WBUF - c->wlen < HTTP_RESP_MAX)
        http_flush(c);
    char *p = c->b->wbuf + c->wlen;
    p = put(p, LIT("HTTP/1.1 "));
    p = put(p, status, status_n);
    p = put(p, LIT("\r\nServer: may\r\nDate: "));
    http_date_copy(p);
    p += HTTP_DATE_LEN;
    p = put(p, LIT("\r\n"));
    p = put(p, hdrs, hdrs_n);
    if (c->close)
        p = put(p, LIT("Connection: close\r\n"));
    p = put(p, LIT("\r\n"));
    if (!c->head)
        p = put(p, body, body_n);
    c->wlen = (size_t)(p - c->b->wbuf);
}

static int on_message_begin(llhttp_t *p)
{
    http_conn_t *c = p->data;
    c->url_len = c->head_len = 0;
    return 0;
}

/* Count the request head; -1 (a parse error: 400) past HTTP_HEAD_MAX. */
static int on_head_bytes(llhttp_t *p, const char *at, size_t n)
{
    (void)at;
    http_conn_t *c = p->data;
    c->head_len += n;
    return c->head_len > HTTP_HEAD_MAX ? -1 : 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    http_conn_t *c = p->data;
    if (on_head_bytes(p, at, n) < 0)
        return -1;
    size_t room = sizeof c->url - c->url_len;
    if (n > room)
        n = room;
    memcpy(c->url + c->url_len, at, n);
    c->url_len += n;
    return 0;
}

static bool path_is(const http_conn_t *c, const char *path, size_t n)
{
    return c->url_len >= n && memcmp(c->url, path, n) == 0 &&
           (c->url_len == n || c->url[n] == '?');
}

/* 400 and close: a malformed request, or an upgrade we do not speak. */
static void http_bad_request(http_conn_t *c)
{
    c->close = true;
    c->head = false;
    http_respond(c, LIT("400 Bad Request"),
                 LIT("Content-Type: text/plain\r\nContent-Length: 12\r\n"),
                 LIT("Bad Request\n"));
}

/* /sleep?ms=N: off unless main turns it on (so test_http and the fuzz
 * target, which include this file, see the routes they know). */
static bool http_sleep_route;

static void http_sleep(http_conn_t *c)
{
    const char *q = memchr(c->url, '?', c->url_len);
    long ms = q && c->url_len - (size_t)(q - c->url) > 4 && memcmp(q, "?ms=", 4) == 0
                  ? strtol(q + 4, NULL, 10) : 0;
    if (ms > 0)
        may_sleep((ms < 10000 ? ms : 10000) * 1000000LL);
    char hdrs[80], body[66];
    int n = snprintf(body, sizeof body, "%.*s\n", (int)(c->url_len < 64 ? c->url_len : 64), c->url);
    int hn = snprintf(hdrs, sizeof hdrs, "Content-Type: text/plain\r\nContent-Length: %d\r\n", n);
    http_respond(c, LIT("200 OK"), hdrs, (size_t)hn, body, (size_t)n);
}

static int on_message_complete(llhttp_t *p)
{
    http_conn_t *c = p->data;
    if (p->upgrade) {
        /* Upgrade or CONNECT: one answer, the 400 (llhttp then stops with
         * HPE_PAUSED_UPGRADE).  Answering it here, not after llhttp_execute
         * returns, makes the answer the same however the request was split
         * over reads. */
        http_bad_request(c);
        return 0;
    }
    c->head = p->method == HTTP_HEAD;
    if (!llhttp_should_keep_alive(p))
        c->close = true;
    if (path_is(c, LIT("/plaintext"))) {
        http_respond(c, LIT("200 OK"),
                     LIT("Content-Type: text/plain\r\nContent-Length: 13\r\n"),
                     LIT("Hello, World!"));
    } else if (path_is(c, LIT("/json"))) {
        http_respond(c, LIT("200 OK"),
                     LIT("Content-Type: application/json\r\nContent-Length: 27\r\n"),
                     LIT("{\"message\":\"Hello, World!\"}"));
    } else if (http_sleep_route && path_is(c, LIT("/sleep"))) {
        http_sleep(c);
    } else {
        http_respond(c, LIT("404 Not Found"),
                     LIT("Content-Type: text/plain\r\nContent-Length: 10\r\n"),
                     LIT("Not Found\n"));
    }
    if (c->close)
        return HPE_PAUSED; /* parse nothing after this request */
    return 0;
}

static const llhttp_settings_t http_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_head_bytes,
    .on_header_value = on_head_bytes,
    .on_message_complete = on_message_complete,
};

/* Close after a last response: let the peer read it before it sees EOF. */
static void http_linger_close(http_conn_t *c)
{
    if (!c->failed)
        HTTP_IO_SHUTDOWN(c);
    if (!c->failed && HTTP_SOCK_SHUTDOWN(c, SHUT_WR) == 0) {
        int64_t end = may_deadline_in(HTTP_LINGER_MS * 1000000LL);
        while (HTTP_SOCK_READ(c, c->b->rbuf, HTTP_RBUF, end) > 0) {
        }
    }
    HTTP_SOCK_CLOSE(c);
}

static void *http_conn(void *arg)
{
    http_conn_t conn, *c = &conn;
    c->fd = (int)(intptr_t)arg;
    c->io = NULL;
    c->b = NULL;
    c->close = c->failed = c->head = false;
    c->url_len = c->head_len = c->wlen = 0;
    llhttp_init(&c->parser, HTTP_REQUEST, &http_settings);
    c->parser.data = c;
    if (HTTP_IO_BEGIN(c) < 0) {
        HTTP_SOCK_CLOSE(c);
        HTTP_IO_END(c);
        return NULL;
    }
    for (;;) {
        int64_t idle = may_deadline_in(HTTP_IDLE_S * 1000000000LL), dl = idle;
        if (!c->b) {
            /* llhttp keeps no pointer into rbuf between calls, and wbuf
             * is empty after every flush: nothing is lost. */
            if (HTTP_IO_WAIT(c, idle) < 0 || !(c->b = malloc(sizeof *c->b))) {
                HTTP_SOCK_CLOSE(c); /* idle timeout, cancelled, closed, OOM */
                break;
            }
            HTTP_BUFS(1);
            if (HTTP_IO_WAITS)
                dl = MAY_NOWAIT;
        }
        ssize_t n = HTTP_IO_READ(c, c->b->rbuf, HTTP_RBUF, dl);
        if (n == -ETIMEDOUT && dl == MAY_NOWAIT) { /* nothing after all: wait again */
            HTTP_BUFS(-1);
            free(c->b);
            c->b = NULL;
            continue;
        }
        if (n <= 0) { /* EOF, reset, idle timeout, cancelled */
            http_flush(c);
            HTTP_SOCK_CLOSE(c);
            break;
        }
        HTTP_COUNT(http_nreads);
        /* HPE_PAUSED and HPE_PAUSED_UPGRADE come after a response that
         * closes (c->close); any other error is a malformed request */
        if (llhttp_execute(&c->parser, c->b->rbuf, (size_t)n) != HPE_OK && !c->close)
            http_bad_request(c);
        http_flush(c); /* every response of this read in one write */
        if (c->failed) {
            HTTP_SOCK_CLOSE(c);
            break;
        }
        if (c->close) {
            http_linger_close(c);
            break;
        }
        if (n < HTTP_RBUF) { /* a short read: the socket is drained, idle */
            HTTP_BUFS(-1);
            free(c->b);
            c->b = NULL;
        }
    }
    HTTP_IO_END(c);
    if (c->b)
        HTTP_BUFS(-1);
    free(c->b);
    return NULL;
}

/* ---- The server --------------------------------------------------------- */

/* The accept loop: runs until cancelled.  arg: the listening fd. */
static void *http_accept_loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = may_tcp_accept(lfd, NULL, MAY_FOREVER);
        if (fd == -ECANCELED)
            break;
        if (fd < 0)
            continue; /* e.g. -EMFILE after its backoff: try again */
        may_tcp_set_nodelay(fd, true);
        if (may_go(http_conn, (void *)(intptr_t)fd) < 0)
            may_tcp_close(fd);
    }
    return NULL;
}

typedef struct http_server {
    may_co_t *accept, *clock;
} http_server_t;

/* Serve on the listening socket lfd (which stays the caller's).  0 or -errno. */
static int http_start(http_server_t *s, int lfd)
{
    http_date_update(); /* valid before the first request */
    int r = may_spawn(&s->clock, http_clock, NULL, &(may_spawn_opts_t){ .name = "http-clock" });
    if (r < 0)
        return r;
    r = may_spawn(&s->accept, http_accept_loop, (void *)(intptr_t)lfd,
                  &(may_spawn_opts_t){ .name = "http-accept" });
    if (r < 0) {
        may_cancel(s->clock);
        may_join(s->clock, NULL, MAY_FOREVER);
    }
    return r;
}

/* Stop accepting and stop the clock.  Open connections run on until their
 * peers close (or HTTP_IDLE_S). */
static void http_stop(http_server_t *s)
{
    may_cancel(s->accept);
    may_cancel(s->clock);
    may_join(s->accept, NULL, MAY_FOREVER);
    may_join(s->clock, NULL, MAY_FOREVER);
}

#ifndef HTTP_NO_MAIN
static const char usage[] =
    "usage: http [port [seconds]]\n"
    "  port     port to listen on, 127.0.0.1 only (default 8080; 0: any free port)\n"
    "  seconds  stop after this many seconds (default 0: run until killed)\n"
    "Routes: /plaintext, /json, /sleep?ms=N (answers after N ms);\n"
    "anything else is 404.\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 2, usage);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%ld", argc > 1 ? usage_long(argv[1], 0, 65535, usage) : 8080);
    int seconds = argc > 2 ? (int)usage_long(argv[2], 0, 1000000000, usage) : 0;
    http_sleep_route = true;
    int lfd = may_tcp_listen(addr, 4096, 0);
    if (lfd < 0) {
        fprintf(stderr, "http: listen %s: %s\n", addr, strerror(-lfd));
        return 1;
    }
    http_server_t srv;
    int r = http_start(&srv, lfd);
    if (r < 0) {
        fprintf(stderr, "http: start: %s\n", strerror(-r));
        return 1;
    }
    printf("http: listening on 127.0.0.1:%d (%d workers)\n", may_tcp_local_port(lfd),
           may_workers());
    fflush(stdout);
    if (seconds > 0) {
        may_sleep((int64_t)seconds * 1000000000);
        http_stop(&srv);
    } else {
        may_join(srv.accept, NULL, MAY_FOREVER); /* until killed */
    }
    may_tcp_close(lfd);
    printf("http: done\n");
    return 0;
}
#endif
