/* server.c - libmay_http's HTTP/1.1 server: connections, requests, responses.
 *
 * The model.  One coroutine per connection runs a loop: wait until the
 * socket is readable, read, feed llhttp, answer every request the read
 * completed into one output buffer, write it with one system call.  The
 * user's handler runs inside that loop, in the connection's coroutine, so
 * it may block (a query, a sleep) like any coroutine; a connection's
 * requests are answered one at a time, in order, which is what HTTP/1.1
 * pipelining requires anyway.
 *
 * Memory.  An idle keep-alive connection holds no buffer: its state is the
 * conn_t on its coroutine's stack.  A read allocates the "active" block
 * (read and write buffers, 16 KiB each); a short read (the socket is
 * drained) frees it again once no request is half-read.  The request's
 * strings are spans into the read buffer (NUL-terminated in place once the
 * head is complete: the byte after each is one llhttp has consumed); only
 * a request that spans reads is copied ("spilled") into an arena before
 * the buffer is reused.  The body goes to its own buffer.  Both grow on
 * demand up to head_max and body_max and are freed with the active block.
 *
 * Deadlines (one per read, conn_t.dl).  A new connection's first request
 * head must arrive within header_timeout_ms of the accept; after a
 * response the connection may idle idle_timeout_ms, and once the first
 * byte of the next request arrives its head has header_timeout_ms again;
 * a body gets body_grace_ms plus one second per body_min_rate bytes
 * received.  A deadline that passes with part of a request read is
 * answered 408; an idle one just closes.  Writes get write_timeout_ms each.
 *
 * Upgrades.  llhttp stops after a request with Upgrade (and Connection:
 * upgrade) or CONNECT, so the bytes after it are known: the handler of
 * such a request runs after llhttp_execute returns.  If it took the
 * connection over (ws.c, through may__http_hijack) the connection ends
 * with the handler; if not (an h2c upgrade we ignore), parsing resumes.
 *
 * Shutdown.  Every connection is on the server's list (list_lock) with
 * whether it is idle.  may_http_stop stops the accept loop, cancels the
 * idle connections and marks the rest to close after their current
 * response; at its deadline it cancels the rest.  An ended connection
 * moves to the `dead` list, whose reaper coroutine joins it: a wait group
 * counts the connections not yet joined, so may_http_stop returns when
 * every one is gone (a may_shutdown after it finds none).  A cancelled
 * caller of may_http_stop still waits (yielding): the server's memory must
 * outlive its coroutines.  The semaphore `room` holds max_conns tokens,
 * one per open connection, so the accept loop waits while the server is
 * full.
 *
 * Lock order: list_lock (a pthread mutex, held for a few stores and
 * may_cancel calls, never across a wait: a may_mutex could fail with
 * -ECANCELED in a cancelled coroutine) and nothing else; conn_t fields
 * other than the list links and `idle` belong to the connection's
 * coroutine.
 */
#include "http_impl.h"

#include <errno.h>
#include <llhttp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define RBUF 16384
#define WBUF 16384
#define DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define NS_MS 1000000LL
/* sizeof(may_http_config_t) in the first version of the header */
#define CONFIG_V1_SIZE (offsetof(may_http_config_t, stack_size) + sizeof(size_t))

/* A string of the request: in the read buffer (zero-copy, the common
 * case), in the arena (spilled: see spill()), or in pathbuf.  Every one is
 * NUL-terminated once the head is complete (finish_head). */
typedef struct span {
    const char *p;     /* NULL: not begun */
    uint32_t n;
} span_t;

typedef struct hdr {
    span_t name, value;
} hdr_t;

#define HDRS_INLINE 16 /* headers without a malloc */
#define PATHBUF 96     /* a path before '?' shorter than this: no malloc */

struct may__http_conn {
    may_http_server_t *srv;
    int fd;
    void *io;          /* the transport's connection state */
    may_co_t *co;      /* this coroutine, for may_http_stop's cancel */
    may__http_conn_t *prev, *next; /* the server's list (list_lock) */
    atomic_bool idle;  /* waiting between requests: see set_idle */
    /* Counters for may_http_stats, written by this coroutine only (relaxed
     * stores, no read-modify-write on a shared line), summed by the stats
     * call over the list (list_lock) plus the ended connections' totals. */
    _Atomic uint64_t reads, writes, requests;
    atomic_bool active; /* holding buffers */

    llhttp_t parser;
    bool in_msg;       /* a request has begun and not been answered */
    bool in_body;      /* ... and its head is complete */
    bool first;        /* no request answered yet on this connection */
    bool close;        /* answer no more requests: close after the flush */
    bool failed;       /* a write failed: drop the connection */
    bool hijacked;     /* ws.c took the connection over */
    bool upgrade;      /* the request completed is an Upgrade/CONNECT */
    int err_status;    /* the status a callback's error is answered with */
    int64_t dl;        /* deadline of the next read */
    int64_t now;       /* the clock after the last read */
    int64_t body_start;

    /* The active block: held while requests are read and answered. */
    char *rbuf, *wbuf;
    size_t wlen, wcap;
    const char *rest;  /* upgrade: the bytes after the request */
    size_t nrest;

    /* The request being read (see the essay and span_t). */
    span_t target, path, query;
    const char *method;   /* llhttp's static name */
    hdr_t *hdrs;          /* hdr_inline or malloc'ed */
    size_t nhdrs, hcap;   /* complete headers; room */
    enum { OPEN_NONE, OPEN_TARGET, OPEN_NAME, OPEN_VALUE } open; /* the span llhttp is in */
    int nhost;
    int expect;           /* index of the Expect header, -1: none, -2: one
                             that is not 100-continue (417) */
    size_t head_len;      /* bytes of request line and headers so far */
    char *arena;          /* spilled strings (a head or body across reads) */
    size_t alen, acap;
    char pathbuf[PATHBUF];
    hdr_t hdr_inline[HDRS_INLINE];
    char *body;
    size_t blen, bcap;

    /* The response. */
    int status;
    bool answered;     /* the head went out (or is in wbuf) */
    bool streaming;    /* may_http_write began a body of unknown length */
    bool chunked;      /* ... as chunks (HTTP/1.1) */
    bool ended;        /* the response is complete */
    bool head_only;    /* HEAD: no body bytes */
    const char *ctype; /* may_http_respond's Content-Type (NULL: none) */
    size_t ctype_len;
    char *rh;          /* the user's header lines */
    size_t rhlen, rhcap;

    void (*at_end)(void *); /* ws.c's cleanup, run when the handler returns */
    void *at_end_arg;

    may_http_req_t req;
    may_http_res_t res;
};

/* ---- The Date header: formatted once a second, a seqlock ----------------
 *
 * No clock coroutine: each response head (put_head) looks at the coarse
 * real-time clock (a vDSO read, no system call) and, when the second changed, one
 * connection (the CAS on date_writer elects it) formats the new date for
 * everyone; the others keep copying the old one meanwhile, at most a
 * second stale, which HTTP's one-second resolution allows. */

static atomic_uint date_seq;
static _Atomic uint64_t date_words[4]; /* 32 bytes >= DATE_LEN */
static _Atomic int64_t date_sec = -1;  /* the second in date_words */
static atomic_int date_writer;         /* 1 while one formats */

static void date_write(int64_t sec)
{
    char s[32] = { 0 };
    struct tm tm;
    time_t t = (time_t)sec;
    strftime(s, sizeof s, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&t, &tm));
    uint64_t w[4];
    memcpy(w, s, sizeof w);
    unsigned q = atomic_load_explicit(&date_seq, memory_order_relaxed);
    atomic_store_explicit(&date_seq, q + 1, memory_order_relaxed);
    /* release fence: the odd count is visible before any word changes
     * (pairs with the readers' acquire fence) */
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < 4; i++)
        atomic_store_explicit(&date_words[i], w[i], memory_order_relaxed);
    /* release: the words before the even count (pairs with the acquire
     * load that begins date_copy) */
    atomic_store_explicit(&date_seq, q + 2, memory_order_release);
    atomic_store_explicit(&date_sec, sec, memory_order_relaxed);
}

/* Make the date current (called once per read). */
static void date_refresh(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (atomic_load_explicit(&date_sec, memory_order_relaxed) == ts.tv_sec)
        return;
    int idle = 0;
    /* acquire/release: one writer at a time (the seqlock has one writer) */
    if (!atomic_compare_exchange_strong_explicit(&date_writer, &idle, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        return;
    if (atomic_load_explicit(&date_sec, memory_order_relaxed) != ts.tv_sec)
        date_write(ts.tv_sec);
    atomic_store_explicit(&date_writer, 0, memory_order_release);
}

static void date_copy(char *out)
{
    uint64_t w[4];
    unsigned q1, q2;
    do {
        q1 = atomic_load_explicit(&date_seq, memory_order_acquire);
        for (int i = 0; i < 4; i++)
            w[i] = atomic_load_explicit(&date_words[i], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        q2 = atomic_load_explicit(&date_seq, memory_order_relaxed);
    } while (q1 != q2 || (q1 & 1));
    memcpy(out, w, DATE_LEN);
}

/* One more of a connection's counters (single writer: see the struct). */
#define COUNT(c, field)                                                                  \
    atomic_store_explicit(&(c)->field, atomic_load_explicit(&(c)->field, memory_order_relaxed) + 1, \
                          memory_order_relaxed)

/* ---- Transport ---------------------------------------------------------- */

ssize_t may__http_read(may__http_conn_t *c, void *buf, size_t n, int64_t deadline)
{
    const may_http_transport_t *t = c->srv->cfg.transport;
    return t ? t->read(c->io, c->fd, buf, n, deadline) : may_tcp_read(c->fd, buf, n, deadline);
}

int may__http_write_all(may__http_conn_t *c, const void *buf, size_t n, int64_t deadline)
{
    const may_http_transport_t *t = c->srv->cfg.transport;
    if (t)
        return t->write_all(c->io, c->fd, buf, n, deadline);
    ssize_t r = may_tcp_write_all(c->fd, buf, n, deadline);
    return r < 0 ? (int)r : 0;
}

static int64_t write_deadline(may__http_conn_t *c)
{
    return may_deadline_in(c->srv->cfg.write_timeout_ms * NS_MS);
}

/* Write out wbuf (every response queued so far, in order). */
static int flush(may__http_conn_t *c)
{
    if (c->failed)
        return -EPIPE;
    if (c->wlen == 0)
        return 0;
    COUNT(c, writes);
    int r = may__http_write_all(c, c->wbuf, c->wlen, write_deadline(c));
    c->wlen = 0;
    if (r < 0) {
        c->failed = true;
        return r == -ECANCELED ? r : -EPIPE;
    }
    return 0;
}

/* Room for n more bytes in wbuf: flush, and grow when n alone is more
 * (a grown wbuf is its own allocation; the block's stays in the block). */
static int reserve(may__http_conn_t *c, size_t n)
{
    if (c->wcap - c->wlen >= n)
        return 0;
    int r = flush(c);
    if (r < 0)
        return r;
    if (n > c->wcap) {
        size_t cap = c->wcap;
        while (cap < n)
            cap *= 2;
        bool own = c->wbuf != c->rbuf + RBUF;
        char *w = realloc(own ? c->wbuf : NULL, cap);
        if (!w)
            return -ENOMEM;
        c->wbuf = w;
        c->wcap = cap;
    }
    return 0;
}

/* ---- Buffers ------------------------------------------------------------ */

static bool activate(may__http_conn_t *c)
{
    if (c->rbuf)
        return true;
    c->rbuf = malloc(RBUF + WBUF);
    if (!c->rbuf)
        return false;
    c->wbuf = c->rbuf + RBUF;
    c->wcap = WBUF;
    c->wlen = 0;
    atomic_store_explicit(&c->active, true, memory_order_relaxed);
    return true;
}

static void release_request(may__http_conn_t *c)
{
    free(c->arena);
    if (c->hdrs != c->hdr_inline)
        free(c->hdrs);
    free(c->body);
    c->arena = NULL;
    c->hdrs = c->hdr_inline;
    c->hcap = HDRS_INLINE;
    c->body = NULL;
    c->acap = c->alen = c->bcap = 0;
}

static void deactivate(may__http_conn_t *c)
{
    if (!c->rbuf)
        return;
    atomic_store_explicit(&c->active, false, memory_order_relaxed);
    if (c->wbuf != c->rbuf + RBUF)
        free(c->wbuf);
    free(c->rbuf);
    c->rbuf = c->wbuf = NULL;
    c->wcap = c->wlen = 0;
    free(c->rh);
    c->rh = NULL;
    c->rhcap = 0;
    if (!c->in_msg)
        release_request(c);
}

/* ---- Request strings: spans, the arena, spilling --------------------------- */

static bool in_range(const char *p, const char *base, size_t n)
{
    return base && (uintptr_t)p - (uintptr_t)base < n;
}

/* Apply fn to every span of the request being read. */
#define FOR_SPANS(c, s, body)                                                   \
    do {                                                                      \
        span_t *s;                                                            \
        s = &(c)->target; body;                                               \
        s = &(c)->path; body;                                                 \
        s = &(c)->query; body;                                                \
        for (size_t i_ = 0; i_ <= (c)->nhdrs && i_ < (c)->hcap; i_++) {        \
            s = &(c)->hdrs[i_].name; body;                                    \
            s = &(c)->hdrs[i_].value; body;                                   \
        }                                                                     \
    } while (0)

/* Room for n more bytes and a NUL in the arena; moving it re-points the
 * spans that are in it.  0 or -1. */
static int arena_reserve(may__http_conn_t *c, size_t n)
{
    if (c->acap - c->alen >= n + 1)
        return 0;
    size_t cap = c->acap ? c->acap : 1024;
    while (cap - c->alen < n + 1)
        cap *= 2;
    char *a = malloc(cap), *old = c->arena;
    if (!a)
        return -1;
    if (old) { /* move (not realloc: the spans are re-pointed from the old base) */
        memcpy(a, old, c->alen < c->acap ? c->alen + 1 : c->acap); /* a closed span's NUL may end it */
        FOR_SPANS(c, s, if (in_range(s->p, old, c->acap)) s->p = a + (s->p - old));
        free(old);
    }
    c->arena = a;
    c->acap = cap;
    return 0;
}

/* Copy a span into the arena (NUL after it).  open: it may grow (it stays
 * the arena's last string, its NUL not counted in alen). */
static int spill_span(may__http_conn_t *c, span_t *s, bool open)
{
    if (arena_reserve(c, s->n) < 0)
        return -1;
    char *d = c->arena + c->alen;
    memcpy(d, s->p, s->n);
    d[s->n] = '\0';
    c->alen += s->n + (open ? 0 : 1);
    s->p = d;
    return 0;
}

/* The read buffer is about to be reused (or freed) with a request half
 * read: copy its strings that are still there into the arena, the open
 * one last, so that llhttp's next piece of it appends (span_add). */
static int spill(may__http_conn_t *c)
{
    span_t *open = c->open == OPEN_TARGET ? &c->target
                   : c->open == OPEN_NAME ? &c->hdrs[c->nhdrs].name
                   : c->open == OPEN_VALUE ? &c->hdrs[c->nhdrs].value : NULL;
    int r = 0;
    FOR_SPANS(c, s, if (r == 0 && s != open && s->p && in_range(s->p, c->rbuf, RBUF)) r = spill_span(c, s, false));
    if (r == 0 && open && open->p && in_range(open->p, c->rbuf, RBUF))
        r = spill_span(c, open, true);
    return r;
}

/* llhttp hands a span over in pieces only across reads: the first piece
 * is kept where it is; a later one follows the spilled start (the arena's
 * last string). */
static int span_add(may__http_conn_t *c, span_t *s, const char *at, size_t n)
{
    if (!s->p) {
        s->p = at;
        s->n = (uint32_t)n;
        return 0;
    }
    if (s->p + s->n == at) { /* contiguous (one buffer) */
        s->n += (uint32_t)n;
        return 0;
    }
    if (arena_reserve(c, n) < 0)
        return -1;
    memcpy(c->arena + c->alen, at, n);
    c->alen += n;
    c->arena[c->alen] = '\0';
    s->n += (uint32_t)n;
    return 0;
}

/* A span is complete: a spilled one keeps its NUL. */
static void span_done(may__http_conn_t *c, span_t *s)
{
    if (s->p && in_range(s->p, c->arena, c->acap))
        c->alen++;
    if (!s->p)
        s->p = "";
    c->open = OPEN_NONE;
}

static bool span_is(const span_t *s, const char *lower, size_t n)
{
    if (s->n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((s->p[i] | 0x20) != lower[i])
            return false;
    return true;
}

/* ---- Responses ----------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

static inline char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define PUT(p, lit) put(p, lit, sizeof(lit) - 1)

static char *put_uint(char *p, uint64_t v, unsigned base)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Whether a status has no body (RFC 9110 6.4.1). */
static bool bodiless(int status)
{
    return status < 200 || status == 204 || status == 304;
}

/* Queue the response head.  len: the body's length, or -1 to stream. */
static int put_head(may__http_conn_t *c, int64_t len)
{
    const may_http_config_t *cfg = &c->srv->cfg;
    size_t need = 128 + c->srv->server_name_len + DATE_LEN + c->rhlen + c->ctype_len + 64;
    int r = reserve(c, need);
    if (r < 0)
        return r;
    if (c->srv->stopping && !c->close)
        c->close = true;
    date_refresh(); /* the handler may have run long since the read */
    char *p = c->wbuf + c->wlen;
    if (c->status == 200) { /* the common case: made once by may_http_start */
        p = put(p, c->srv->head200, c->srv->head200_len);
    } else {
        p = PUT(p, "HTTP/1.1 ");
        p = put_uint(p, (uint64_t)c->status, 10);
        *p++ = ' ';
        const char *rs = reason(c->status);
        p = put(p, rs, strlen(rs));
        if (c->srv->server_name_len) {
            p = PUT(p, "\r\nServer: ");
            p = put(p, cfg->server_name, c->srv->server_name_len);
        }
        p = PUT(p, "\r\nDate: ");
    }
    date_copy(p);
    p += DATE_LEN;
    p = PUT(p, "\r\n");
    if (c->ctype) {
        p = PUT(p, "Content-Type: ");
        p = put(p, c->ctype, c->ctype_len);
        p = PUT(p, "\r\n");
    }
    if (c->rhlen)
        p = put(p, c->rh, c->rhlen);
    if (len >= 0) {
        if (c->status != 204 && c->status >= 200) {
            p = PUT(p, "Content-Length: ");
            p = put_uint(p, (uint64_t)len, 10);
            p = PUT(p, "\r\n");
        }
    } else if (c->chunked) {
        p = PUT(p, "Transfer-Encoding: chunked\r\n");
    }
    if (c->close)
        p = PUT(p, "Connection: close\r\n");
    else if (c->parser.http_minor == 0) /* HTTP/1.0 kept alive: say so */
        p = PUT(p, "Connection: keep-alive\r\n");
    p = PUT(p, "\r\n");
    c->wlen = (size_t)(p - c->wbuf);
    c->answered = true;
    return 0;
}

/* Queue body bytes (direct write when they do not fit). */
static int put_body(may__http_conn_t *c, const void *data, size_t len)
{
    if (len == 0 || c->head_only)
        return 0;
    if (c->wcap - c->wlen >= len) {
        memcpy(c->wbuf + c->wlen, data, len);
        c->wlen += len;
        return 0;
    }
    int r = flush(c);
    if (r < 0)
        return r;
    if (len <= c->wcap / 2) {
        memcpy(c->wbuf, data, len);
        c->wlen = len;
        return 0;
    }
    COUNT(c, writes);
    r = may__http_write_all(c, data, len, write_deadline(c));
    if (r < 0) {
        c->failed = true;
        return r == -ECANCELED ? r : -EPIPE;
    }
    return 0;
}

/* A short text answer from the library itself; the connection closes. */
static void answer_error(may__http_conn_t *c, int status)
{
    if (c->answered && !c->ended) { /* mid-stream: nothing sane to add */
        c->close = true;
        c->failed = true;
        return;
    }
    c->close = true;
    c->status = status;
    c->rhlen = 0;
    c->head_only = false;
    c->chunked = false;
    c->ctype = "text/plain";
    c->ctype_len = 10;
    const char *rs = reason(status);
    char body[64];
    int n = snprintf(body, sizeof body, "%s\n", rs);
    if (put_head(c, n) == 0)
        put_body(c, body, (size_t)n);
    c->ended = true;
    COUNT(c, requests);
}

/* ---- The public response calls ------------------------------------------ */

MAY_API int may_http_status(may_http_res_t *res, int status)
{
    if (!res || status < 100 || status > 999)
        return -EINVAL;
    if (res->c->answered)
        return -EALREADY;
    res->c->status = status;
    return 0;
}

/* RFC 9110 5.6.2 token characters. */
static bool is_tchar(unsigned char ch)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && memchr(extra, ch, sizeof extra - 1));
}

/* The headers the library writes itself. */
static bool is_own_header(const char *name, size_t n)
{
    span_t s = { name, (uint32_t)n };
    switch (n) {
    case 4: return span_is(&s, "date", 4);
    case 6: return span_is(&s, "server", 6);
    case 10: return span_is(&s, "connection", 10);
    case 14: return span_is(&s, "content-length", 14);
    case 17: return span_is(&s, "transfer-encoding", 17);
    default: return false;
    }
}

/* Append "name: value\r\n" to the user's header lines. */
static int append_header(may__http_conn_t *c, const char *name, size_t nn, const char *value, size_t vn)
{
    size_t need = c->rhlen + nn + vn + 4;
    if (need > c->rhcap) {
        size_t cap = c->rhcap ? c->rhcap : 256;
        while (cap < need)
            cap *= 2;
        char *h = realloc(c->rh, cap);
        if (!h)
            return -ENOMEM;
        c->rh = h;
        c->rhcap = cap;
    }
    char *p = c->rh + c->rhlen;
    p = put(p, name, nn);
    p = PUT(p, ": ");
    p = put(p, value, vn);
    p = PUT(p, "\r\n");
    c->rhlen = (size_t)(p - c->rh);
    return 0;
}

/* A header value: visible characters, SP and HTAB (RFC 9110 5.5: no CR,
 * LF or other control; the NUL ends it).  Its length, or -1. */
static ssize_t value_len(const char *v)
{
    const unsigned char *s = (const unsigned char *)v;
    for (; *s; s++)
        if ((*s < 0x20 && *s != '\t') || *s == 0x7f)
            return -1;
    return (const char *)s - v;
}

MAY_API int may_http_add_header(may_http_res_t *res, const char *name, const char *value)
{
    if (!res || !name || !value || !*name)
        return -EINVAL;
    may__http_conn_t *c = res->c;
    if (c->answered)
        return -EALREADY;
    size_t nn = 0;
    for (; name[nn]; nn++)
        if (!is_tchar((unsigned char)name[nn]))
            return -EINVAL;
    ssize_t vn = value_len(value);
    if (vn < 0 || is_own_header(name, nn))
        return -EINVAL;
    return append_header(c, name, nn, value, (size_t)vn);
}

MAY_API int may_http_send(may_http_res_t *res, const void *body, size_t len)
{
    if (!res || (!body && len))
        return -EINVAL;
    may__http_conn_t *c = res->c;
    if (c->answered)
        return -EALREADY;
    if (c->failed)
        return -EPIPE;
    if (bodiless(c->status))
        len = 0;
    int r = put_head(c, (int64_t)len);
    if (r == 0)
        r = put_body(c, body, len);
    c->ended = true;
    COUNT(c, requests);
    return r;
}

MAY_API int may_http_respond(may_http_res_t *res, int status, const char *content_type,
                             const void *body, size_t len)
{
    int r = may_http_status(res, status);
    if (r == 0 && content_type) { /* written by put_head, not copied here */
        ssize_t n = value_len(content_type);
        if (n < 0)
            return -EINVAL;
        res->c->ctype = content_type;
        res->c->ctype_len = (size_t)n;
    }
    return r < 0 ? r : may_http_send(res, body, len);
}

MAY_API int may_http_write(may_http_res_t *res, const void *data, size_t len)
{
    if (!res || (!data && len))
        return -EINVAL;
    may__http_conn_t *c = res->c;
    if (c->ended)
        return -EALREADY;
    if (c->failed)
        return -EPIPE;
    int r;
    if (!c->answered) {
        c->streaming = true;
        c->chunked = c->parser.http_minor >= 1;
        if (!c->chunked)
            c->close = true; /* HTTP/1.0: the body ends with the connection */
        if ((r = put_head(c, bodiless(c->status) ? 0 : -1)) < 0)
            return r;
    }
    if (len && !c->head_only && !bodiless(c->status)) {
        if (c->chunked) {
            char sz[24], *p = put_uint(sz, len, 16);
            p = PUT(p, "\r\n");
            if ((r = put_body(c, sz, (size_t)(p - sz))) < 0 || (r = put_body(c, data, len)) < 0 ||
                (r = put_body(c, "\r\n", 2)) < 0)
                return r;
        } else if ((r = put_body(c, data, len)) < 0) {
            return r;
        }
    }
    return flush(c); /* a stream's bytes go out as they are written */
}

MAY_API int may_http_end(may_http_res_t *res)
{
    if (!res)
        return -EINVAL;
    may__http_conn_t *c = res->c;
    if (c->ended)
        return -EALREADY;
    if (!c->answered)
        return may_http_send(res, NULL, 0);
    c->ended = true;
    COUNT(c, requests);
    if (c->chunked && !c->head_only && !bodiless(c->status))
        return put_body(c, "0\r\n\r\n", 5);
    return c->failed ? -EPIPE : 0;
}

/* ---- The public request calls ------------------------------------------- */

MAY_API const char *may_http_method(const may_http_req_t *req)
{
    return req->c->method;
}

static const char *span_str(const span_t *s, size_t *len)
{
    if (len)
        *len = s->n;
    return s->p ? s->p : "";
}

MAY_API const char *may_http_target(const may_http_req_t *req, size_t *len)
{
    return span_str(&req->c->target, len);
}

MAY_API const char *may_http_path(const may_http_req_t *req, size_t *len)
{
    return span_str(&req->c->path, len);
}

MAY_API const char *may_http_query(const may_http_req_t *req, size_t *len)
{
    return span_str(&req->c->query, len);
}

MAY_API int may_http_version(const may_http_req_t *req)
{
    return req->c->parser.http_major * 10 + req->c->parser.http_minor;
}

MAY_API const char *may_http_header(const may_http_req_t *req, const char *name, size_t *len)
{
    const may__http_conn_t *c = req->c;
    size_t n = strlen(name);
    for (size_t i = 0; i < c->nhdrs; i++)
        if (c->hdrs[i].name.n == n && strncasecmp(c->hdrs[i].name.p, name, n) == 0)
            return span_str(&c->hdrs[i].value, len);
    return NULL;
}

MAY_API size_t may_http_nheaders(const may_http_req_t *req)
{
    return req->c->nhdrs;
}

MAY_API int may_http_header_at(const may_http_req_t *req, size_t i, const char **name,
                               const char **value)
{
    const may__http_conn_t *c = req->c;
    if (i >= c->nhdrs)
        return -ERANGE;
    if (name)
        *name = c->hdrs[i].name.p;
    if (value)
        *value = c->hdrs[i].value.p;
    return 0;
}

MAY_API const void *may_http_body(const may_http_req_t *req, size_t *len)
{
    const may__http_conn_t *c = req->c;
    if (len)
        *len = c->blen;
    return c->body ? c->body : "";
}

MAY_API bool may_http_closing(const may_http_req_t *req)
{
    return req->c->close || atomic_load_explicit(&req->c->srv->stopping, memory_order_relaxed);
}

/* ---- For ws.c ------------------------------------------------------------ */

void may__http_hijack(may_http_res_t *res, const char **rest, size_t *nrest)
{
    may__http_conn_t *c = res->c;
    c->hijacked = true;
    c->answered = c->ended = true;
    c->close = true;
    *rest = c->rest;
    *nrest = c->nrest;
}

void may__http_at_end(may_http_res_t *res, void (*fn)(void *), void *arg)
{
    res->c->at_end = fn;
    res->c->at_end_arg = arg;
}

const may_http_config_t *may__http_config(const may_http_req_t *req)
{
    return &req->c->srv->cfg;
}

int may__http_fail(may_http_res_t *res, int status)
{
    may__http_conn_t *c = res->c;
    if (c->answered)
        return -EALREADY;
    answer_error(c, status);
    return flush(c);
}

/* ---- Parsing --------------------------------------------------------------- */

static may__http_conn_t *conn_of(llhttp_t *p)
{
    return p->data;
}

static int on_message_begin(llhttp_t *p)
{
    may__http_conn_t *c = conn_of(p);
    c->in_msg = true;
    c->in_body = false;
    c->upgrade = false;
    c->target = c->path = c->query = (span_t){ NULL, 0 };
    c->hdrs[0].name = c->hdrs[0].value = (span_t){ NULL, 0 };
    c->nhdrs = c->blen = c->head_len = 0;
    c->alen = 0;
    c->open = OPEN_NONE;
    c->nhost = 0;
    c->expect = -1;
    c->err_status = 0;
    c->status = 200;
    c->answered = c->streaming = c->chunked = c->ended = false;
    c->rhlen = 0;
    c->ctype = NULL;
    c->ctype_len = 0;
    if (!c->first) /* a kept-alive connection: the head's clock starts now */
        c->dl = c->now + c->srv->cfg.header_timeout_ms * NS_MS;
    return 0;
}

/* Count the head; past head_max the request is refused with `status`. */
static int count_head(may__http_conn_t *c, size_t n, int status)
{
    c->head_len += n;
    if (c->head_len > c->srv->cfg.head_max) {
        c->err_status = status;
        return -1;
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    may__http_conn_t *c = conn_of(p);
    c->open = OPEN_TARGET;
    if (count_head(c, n, 414) < 0 || span_add(c, &c->target, at, n) < 0)
        return -1;
    return 0;
}

/* The span llhttp was in is complete (llhttp's *_complete callbacks cost
 * more than this: a span ends where the next begins). */
static void close_open(may__http_conn_t *c)
{
    if (c->open == OPEN_TARGET)
        span_done(c, &c->target);
    else if (c->open == OPEN_NAME)
        span_done(c, &c->hdrs[c->nhdrs].name);
}

/* Room for header nhdrs. */
static int hdr_room(may__http_conn_t *c)
{
    if (c->nhdrs + 1 < c->hcap)
        return 0;
    size_t cap = c->hcap * 2;
    hdr_t *h = c->hdrs == c->hdr_inline ? malloc(cap * sizeof *h) : realloc(c->hdrs, cap * sizeof *h);
    if (!h)
        return -1;
    if (c->hdrs == c->hdr_inline)
        memcpy(h, c->hdr_inline, sizeof c->hdr_inline);
    c->hdrs = h;
    c->hcap = cap;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    may__http_conn_t *c = conn_of(p);
    if (count_head(c, n, 431) < 0)
        return -1;
    if (c->open == OPEN_TARGET)
        close_open(c);
    c->open = OPEN_NAME;
    return span_add(c, &c->hdrs[c->nhdrs].name, at, n);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    may__http_conn_t *c = conn_of(p);
    if (count_head(c, n, 431) < 0)
        return -1;
    if (c->open == OPEN_NAME)
        close_open(c);
    c->open = OPEN_VALUE;
    return span_add(c, &c->hdrs[c->nhdrs].value, at, n);
}

/* A header is complete (llhttp calls this for empty values too). */
static int on_header_value_complete(llhttp_t *p)
{
    may__http_conn_t *c = conn_of(p);
    hdr_t *h = &c->hdrs[c->nhdrs];
    span_done(c, &h->value);
    /* RFC 9112 5.1: no whitespace between a name and its colon (a request
     * smuggling vector).  llhttp 8 accepts it, keeping it in the name. */
    const span_t *name = &h->name;
    if (name->n && (name->p[name->n - 1] == ' ' || name->p[name->n - 1] == '\t')) {
        c->err_status = 400;
        return -1;
    }
    if (span_is(name, "host", 4)) {
        c->nhost++;
    } else if (span_is(name, "expect", 6)) { /* a list: every line must be 100-continue */
        if (c->expect == -2 || !span_is(&h->value, "100-continue", 12))
            c->expect = -2;
        else
            c->expect = (int)c->nhdrs;
    }
    if (hdr_room(c) < 0)
        return -1;
    c->nhdrs++;
    c->hdrs[c->nhdrs].name = c->hdrs[c->nhdrs].value = (span_t){ NULL, 0 };
    return 0;
}

/* An absolute-form target (RFC 9112 3.2.2): scheme "://" authority ...,
 * the scheme ALPHA *(ALPHA / DIGIT / "+" / "-" / "."): where the
 * authority begins, or NULL. */
static const char *absolute_form(const char *t, const char *end)
{
    const char *p = t;
    if (p == end || !((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z'))
        return NULL;
    while (p < end && (((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || (*p >= '0' && *p <= '9') ||
                       *p == '+' || *p == '-' || *p == '.'))
        p++;
    return end - p >= 3 && memcmp(p, "://", 3) == 0 ? p + 3 : NULL;
}

/* The head is complete: NUL-terminate the strings still in the read
 * buffer (each is followed by a byte llhttp has consumed: ' ', ':' or
 * CR) and split the target into path and query (an absolute-form
 * target's path is after its authority). */
static int finish_head(may__http_conn_t *c)
{
    if (in_range(c->target.p, c->rbuf, RBUF))
        ((char *)c->target.p)[c->target.n] = '\0';
    for (size_t i = 0; i < c->nhdrs; i++) {
        hdr_t *h = &c->hdrs[i];
        if (in_range(h->name.p, c->rbuf, RBUF))
            ((char *)h->name.p)[h->name.n] = '\0';
        if (in_range(h->value.p, c->rbuf, RBUF))
            ((char *)h->value.p)[h->value.n] = '\0';
    }
    const char *t = c->target.p ? c->target.p : "", *path = t, *end = t + c->target.n;
    const char *auth = *t != '/' ? absolute_form(t, end) : NULL;
    if (auth) { /* the authority ends at '/', '?' or '#' (RFC 3986 3.2) */
        path = auth;
        while (path < end && *path != '/' && *path != '?' && *path != '#')
            path++;
    }
    const char *q = memchr(path, '?', (size_t)(end - path));
    size_t plen = (size_t)((q ? q : end) - path);
    if (q) {
        c->query = (span_t){ q + 1, (uint32_t)(end - q - 1) };
    } else {
        c->query = (span_t){ end, 0 };
    }
    if (plen == 0) { /* "http://host" means "/" */
        c->path = (span_t){ "/", 1 };
    } else if (!q) { /* the path ends the target: share its NUL */
        c->path = (span_t){ path, (uint32_t)plen };
    } else if (plen < PATHBUF) {
        memcpy(c->pathbuf, path, plen);
        c->pathbuf[plen] = '\0';
        c->path = (span_t){ c->pathbuf, (uint32_t)plen };
    } else {
        c->path = (span_t){ path, (uint32_t)plen };
        if (spill_span(c, &c->path, false) < 0)
            return -1;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    may__http_conn_t *c = conn_of(p);
    const may_http_config_t *cfg = &c->srv->cfg;
    close_open(c); /* a request line without headers */
    c->method = llhttp_method_name((llhttp_method_t)p->method);
    if (finish_head(c) < 0)
        return -1;
    if (p->http_major != 1 || p->http_minor > 1) {
        c->err_status = 505;
        return -1;
    }
    if ((p->http_minor == 1 && c->nhost == 0) || c->nhost > 1 || p->method == HTTP_CONNECT) {
        c->err_status = 400;
        return -1;
    }
    c->head_only = p->method == HTTP_HEAD;
    c->in_body = true;
    c->body_start = c->now;
    c->dl = c->now + cfg->body_grace_ms * NS_MS;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > cfg->body_max) {
        c->err_status = 413;
        return -1;
    }
    if (c->expect != -1) {
        if (c->expect == -2) { /* see on_header_value_complete */
            c->err_status = 417;
            return -1;
        }
        /* Ask for the body now (after the answers queued before it). */
        if (p->http_minor == 1 && ((p->flags & F_CHUNKED) || p->content_length > 0)) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (reserve(c, sizeof cont) == 0) {
                memcpy(c->wbuf + c->wlen, cont, sizeof cont - 1);
                c->wlen += sizeof cont - 1;
                flush(c);
            }
        }
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    may__http_conn_t *c = conn_of(p);
    const may_http_config_t *cfg = &c->srv->cfg;
    if (c->blen + n > cfg->body_max) {
        c->err_status = 413;
        return -1;
    }
    if (c->bcap - c->blen < n + 1) {
        size_t cap = c->bcap ? c->bcap : 4096;
        while (cap - c->blen < n + 1)
            cap *= 2;
        char *b = realloc(c->body, cap);
        if (!b)
            return -1;
        c->body = b;
        c->bcap = cap;
    }
    memcpy(c->body + c->blen, at, n);
    c->blen += n;
    c->body[c->blen] = '\0';
    return 0;
}

static void run_handler(may__http_conn_t *c)
{
    const may_http_config_t *cfg = &c->srv->cfg;
    if (!llhttp_should_keep_alive(&c->parser))
        c->close = true;
    if (c->srv->stopping)
        c->close = true;
    cfg->handler(&c->req, &c->res, cfg->arg);
    if (c->at_end) {
        void (*fn)(void *) = c->at_end;
        c->at_end = NULL;
        fn(c->at_end_arg);
    }
    if (!c->ended && !c->hijacked)
        may_http_end(&c->res);
    /* the next request (or the idle wait) starts now */
    c->in_msg = c->in_body = false;
    c->first = false;
    c->dl = c->now + cfg->idle_timeout_ms * NS_MS;
}

static int on_message_complete(llhttp_t *p)
{
    may__http_conn_t *c = conn_of(p);
    if (c->blen == 0 && c->body)
        c->body[0] = '\0';
    if (p->upgrade) { /* after llhttp_execute returns: see the essay */
        c->upgrade = true;
        return 0;
    }
    run_handler(c);
    if (c->close || c->failed)
        return HPE_PAUSED; /* parse nothing after this request */
    return 0;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Feed n bytes; answers and upgrades handled.  false: stop reading. */
static bool parse(may__http_conn_t *c, const char *buf, size_t n)
{
    for (;;) {
        llhttp_errno_t e = llhttp_execute(&c->parser, buf, n);
        if (e == HPE_OK) {
            if (c->in_msg && spill(c) < 0) { /* the buffer will be reused */
                answer_error(c, 500);
                return false;
            }
            return !c->close && !c->failed;
        }
        if (e == HPE_PAUSED_UPGRADE && c->upgrade) {
            const char *at = llhttp_get_error_pos(&c->parser);
            c->rest = at;
            c->nrest = at ? (size_t)(buf + n - at) : 0;
            if (flush(c) < 0) /* the answers before it go out first */
                return false;
            run_handler(c);
            if (c->hijacked || c->close || c->failed)
                return false;
            llhttp_resume_after_upgrade(&c->parser);
            buf = c->rest;
            n = c->nrest;
            c->rest = NULL;
            c->nrest = 0;
            if (n == 0)
                return true;
            continue;
        }
        if (e == HPE_PAUSED) /* after a response that closes */
            return false;
        /* A malformed request, or one of the refusals the callbacks made. */
        int status = c->err_status                                            ? c->err_status
                     : e == HPE_INVALID_VERSION || e == HPE_PAUSED_H2_UPGRADE ? 505
                                                                              : 400;
        answer_error(c, status);
        return false;
    }
}

/* ---- One connection ------------------------------------------------------ */

/* Close after a last response: let the peer read it before it sees EOF. */
static void linger_close(may__http_conn_t *c)
{
    const may_http_transport_t *t = c->srv->cfg.transport;
    if (!c->failed && t && t->shutdown)
        t->shutdown(c->io, c->fd);
    if (!c->failed && c->srv->cfg.linger_ms > 0 && may_tcp_shutdown(c->fd, SHUT_WR) == 0 && activate(c)) {
        int64_t end = may_deadline_in(c->srv->cfg.linger_ms * NS_MS);
        while (may_tcp_read(c->fd, c->rbuf, RBUF, end) > 0) {
        }
    }
}

/* Mark the connection idle (waiting for a request) or busy.  Dekker with
 * may_http_stop: it stores `stopping` then reads each `idle`; this stores
 * `idle` then reads `stopping` (both seq_cst), so a connection going idle
 * during a stop is seen by the stop (and cancelled) or sees the stop (and
 * closes), or both. */
static void set_idle(may__http_conn_t *c, bool idle)
{
    if (!idle) { /* a stop's scan racing with this may still cancel it: any
                    store order leaves that window, so no fence for it */
        atomic_store_explicit(&c->idle, false, memory_order_relaxed);
        return;
    }
    atomic_store(&c->idle, true);
    if (atomic_load(&c->srv->stopping))
        c->close = true;
}

/* The read deadline: see the essay. */
static int64_t read_deadline(const may__http_conn_t *c)
{
    const may_http_config_t *cfg = &c->srv->cfg;
    if (!c->in_body)
        return c->dl;
    return c->body_start + cfg->body_grace_ms * NS_MS +
           (int64_t)((double)c->blen / (double)cfg->body_min_rate * 1e9);
}

/* The deadline passed: a request begun gets 408, an idle connection just
 * closes. */
static void timed_out(may__http_conn_t *c)
{
    if (c->in_msg && activate(c)) {
        answer_error(c, 408);
        flush(c);
        linger_close(c);
    }
}

static void serve(may__http_conn_t *c)
{
    const may_http_transport_t *t = c->srv->cfg.transport;
    bool waits = !t || !t->buffered;
    for (;;) {
        int64_t dl = read_deadline(c), rdl = dl;
        if (!c->rbuf) {
            /* Between reads with nothing buffered: wait holding no memory
             * (a drained socket's wait costs no system call). */
            if (!c->in_msg)
                set_idle(c, true);
            if (c->close)
                return;
            int r = waits ? may_fd_wait(c->fd, MAY_READ, dl) : 0;
            if (!c->in_msg)
                set_idle(c, false);
            if (r < 0) {
                if (r == -ETIMEDOUT)
                    timed_out(c);
                return;
            }
            if (!activate(c))
                return;
            if (waits)
                rdl = MAY_NOWAIT; /* readiness is a hint, as poll's */
        }
        ssize_t n = may__http_read(c, c->rbuf, RBUF, rdl);
        if (n == -ETIMEDOUT && rdl == MAY_NOWAIT) {
            deactivate(c); /* nothing after all: wait again */
            continue;
        }
        c->now = may_now();
        if (n <= 0) { /* EOF, reset, timeout, cancelled */
            if (n == -ETIMEDOUT)
                timed_out(c);
            else
                flush(c);
            return;
        }
        COUNT(c, reads);
        bool more = parse(c, c->rbuf, (size_t)n);
        flush(c); /* every response of this read in one write */
        if (c->failed)
            return;
        if (!more || c->close) {
            linger_close(c);
            return;
        }
        if (n < RBUF) /* a short read: the socket is drained */
            deactivate(c);
    }
}

/* What a connection coroutine starts with; at its end, the reaper's
 * node (see reaper()). */
struct conn_start {
    may_http_server_t *srv;
    int fd;
    may_co_t *co;
    conn_start_t *next;
};

static void *conn_run(void *arg)
{
    conn_start_t *st = arg;
    may__http_conn_t conn, *c = &conn;
    memset(c, 0, sizeof *c);
    c->srv = st->srv;
    c->fd = st->fd;
    st->co = may_self();
    may_http_server_t *srv = c->srv;
    c->co = may_self();
    c->hdrs = c->hdr_inline;
    c->hcap = HDRS_INLINE;
    c->first = true;
    c->req.c = c;
    c->res.c = c;
    c->status = 200;
    c->now = may_now();
    c->dl = c->now + srv->cfg.header_timeout_ms * NS_MS;
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;

    pthread_mutex_lock(&srv->list_lock);
    c->next = srv->list;
    if (srv->list)
        srv->list->prev = c;
    srv->list = c;
    pthread_mutex_unlock(&srv->list_lock);

    const may_http_transport_t *t = srv->cfg.transport;
    if (!t || !t->open || t->open(srv->cfg.transport_arg, c->fd, &c->io, c->dl) == 0)
        serve(c);
    may_tcp_close(c->fd);
    if (t && t->close)
        t->close(c->io);
    deactivate(c);
    c->in_msg = false;
    release_request(c);

    /* Off the list (its counters into the totals), onto the reaper's: it
     * joins this coroutine. */
    pthread_mutex_lock(&srv->list_lock);
    srv->reads += c->reads;
    srv->writes += c->writes;
    srv->requests += c->requests;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    st->next = srv->dead;
    srv->dead = st;
    pthread_mutex_unlock(&srv->list_lock);
    atomic_fetch_sub_explicit(&srv->nconns, 1, memory_order_relaxed);
    may_sem_post(srv->room);
    may_sem_post(srv->reap);
    return NULL;
}

/* The reaper joins every connection coroutine after its end, so that
 * may_http_stop returns only when they are all gone (a may_shutdown right
 * after it finds none).  It is cancelled by may_http_stop once the wait
 * group says every connection was joined. */
static void *reaper(void *arg)
{
    may_http_server_t *srv = arg;
    while (may_sem_wait(srv->reap, MAY_FOREVER) == 0) {
        pthread_mutex_lock(&srv->list_lock);
        conn_start_t *st = srv->dead;
        srv->dead = st->next;
        pthread_mutex_unlock(&srv->list_lock);
        may_join(st->co, NULL, MAY_FOREVER);
        free(st);
        may_wg_done(srv->wg);
    }
    return NULL;
}

/* ---- The server ---------------------------------------------------------- */

/* Start a connection; the caller holds a `room` token, which it keeps. */
static int start_conn(may_http_server_t *srv, int fd)
{
    conn_start_t *st = malloc(sizeof *st);
    if (!st)
        return -ENOMEM;
    st->srv = srv;
    st->fd = fd;
    may_wg_add(srv->wg, 1);
    atomic_fetch_add_explicit(&srv->nconns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->accepted, 1, memory_order_relaxed);
    may_co_t *co;
    int r = may_spawn(&co, conn_run, st, &(may_spawn_opts_t){ .stack_size = srv->cfg.stack_size });
    if (r < 0) {
        atomic_fetch_sub_explicit(&srv->nconns, 1, memory_order_relaxed);
        may_wg_done(srv->wg);
        free(st);
    }
    return r;
}

static void *accept_loop(void *arg)
{
    may_http_server_t *srv = arg;
    for (;;) {
        if (may_sem_wait(srv->room, MAY_FOREVER) < 0) /* full: wait for a close */
            break;
        int fd = may_tcp_accept(srv->lfd, NULL, MAY_FOREVER);
        if (fd < 0) {
            may_sem_post(srv->room);
            if (fd == -ECANCELED)
                break;
            continue; /* e.g. -EMFILE after its backoff: try again */
        }
        may_tcp_set_nodelay(fd, true);
        if (start_conn(srv, fd) < 0) {
            may_tcp_close(fd);
            may_sem_post(srv->room);
        }
    }
    return NULL;
}

MAY_API int may_http_serve_conn(may_http_server_t *srv, int fd)
{
    if (!srv || fd < 0)
        return -EINVAL;
    if (srv->stopping || may_sem_trywait(srv->room) < 0) {
        may_tcp_close(fd);
        return -EAGAIN;
    }
    int r = start_conn(srv, fd);
    if (r < 0) {
        may_tcp_close(fd);
        may_sem_post(srv->room);
    }
    return r;
}

/* Join co even when the caller is cancelled (may_join then fails at once):
 * the server's memory must outlive its coroutines. */
static void join_all_the_same(may_co_t *co)
{
    while (may_join(co, NULL, MAY_FOREVER) == -ECANCELED)
        may_yield();
}

static void srv_free(may_http_server_t *srv)
{
    may_sem_free(srv->room);
    may_wg_free(srv->wg);
    may_sem_free(srv->reap);
    pthread_mutex_destroy(&srv->list_lock);
    free(srv);
}

MAY_API int may_http_start_sized(may_http_server_t **out, int lfd, const may_http_config_t *cfg,
                                 size_t size)
{
    if (!out || !cfg || size < CONFIG_V1_SIZE || lfd < -1)
        return -EINVAL;
    /* a caller built with a later header: its extra fields must be unset */
    for (size_t i = sizeof *cfg; i < size; i++)
        if (((const unsigned char *)cfg)[i])
            return -E2BIG;
    may_http_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    memcpy(&srv->cfg, cfg, size < sizeof *cfg ? size : sizeof *cfg);
    may_http_config_t *c = &srv->cfg;
    if (!c->handler) {
        free(srv);
        return -EINVAL;
    }
    if (!c->server_name)
        c->server_name = "may";
    srv->server_name_len = strlen(c->server_name);
    if (srv->server_name_len > 256 || strpbrk(c->server_name, "\r\n")) {
        free(srv);
        return -EINVAL;
    }
    srv->head200_len = (size_t)snprintf(srv->head200, sizeof srv->head200, "HTTP/1.1 200 OK%s%s\r\nDate: ",
                                        srv->server_name_len ? "\r\nServer: " : "", c->server_name);
    if (c->header_timeout_ms <= 0)
        c->header_timeout_ms = 10000;
    if (c->idle_timeout_ms <= 0)
        c->idle_timeout_ms = 60000;
    if (c->write_timeout_ms <= 0)
        c->write_timeout_ms = 30000;
    if (c->body_grace_ms <= 0)
        c->body_grace_ms = 10000;
    if (c->body_min_rate == 0)
        c->body_min_rate = 1024;
    if (c->head_max == 0)
        c->head_max = 65536;
    if (c->body_max == 0)
        c->body_max = 8u << 20;
    if (c->max_conns == 0)
        c->max_conns = 10000;
    if (c->linger_ms == 0)
        c->linger_ms = 1000;
    if (c->ws_max_message == 0)
        c->ws_max_message = 16u << 20;
    if (c->ws_max_queue == 0)
        c->ws_max_queue = 1u << 20;
    if (c->transport && (!c->transport->read || !c->transport->write_all)) {
        free(srv);
        return -EINVAL;
    }
    srv->lfd = lfd;
    int r;
    pthread_mutex_init(&srv->list_lock, NULL);
    if ((r = may_sem_new(&srv->room, c->max_conns)) < 0 || (r = may_wg_new(&srv->wg)) < 0 ||
        (r = may_sem_new(&srv->reap, 0)) < 0)
        goto out_free;
    date_refresh(); /* valid before the first request */
    if ((r = may_spawn(&srv->reaper, reaper, srv, &(may_spawn_opts_t){ .name = "http-reaper" })) < 0)
        goto out_free;
    if (lfd >= 0 && (r = may_spawn(&srv->accept, accept_loop, srv,
                                   &(may_spawn_opts_t){ .name = "http-accept" })) < 0)
        goto out_reaper;
    *out = srv;
    return 0;
out_reaper:
    may_cancel(srv->reaper);
    join_all_the_same(srv->reaper);
out_free:
    srv_free(srv);
    return r;
}

MAY_API int may_http_stop(may_http_server_t *srv, int64_t deadline)
{
    if (!srv)
        return -EINVAL;
    if (srv->accept) {
        may_cancel(srv->accept);
        join_all_the_same(srv->accept);
    }
    pthread_mutex_lock(&srv->list_lock);
    atomic_store(&srv->stopping, true); /* seq_cst: see set_idle */
    for (may__http_conn_t *c = srv->list; c; c = c->next)
        if (atomic_load(&c->idle))
            may_cancel(c->co);
    pthread_mutex_unlock(&srv->list_lock);
    int r = may_wg_wait(srv->wg, deadline);
    if (r != 0) { /* the deadline (or our own cancel): cancel what is left */
        pthread_mutex_lock(&srv->list_lock);
        for (may__http_conn_t *c = srv->list; c; c = c->next)
            may_cancel(c->co);
        pthread_mutex_unlock(&srv->list_lock);
        while (may_wg_wait(srv->wg, MAY_FOREVER) != 0) /* cancelled: see join_all_the_same */
            may_yield();
        r = r == -ECANCELED ? r : -ETIMEDOUT;
    }
    may_cancel(srv->reaper);
    join_all_the_same(srv->reaper);
    srv_free(srv);
    return r;
}

MAY_API void may_http_stats(may_http_server_t *srv, may_http_stats_t *out)
{
    pthread_mutex_lock(&srv->list_lock);
    uint64_t reads = srv->reads, writes = srv->writes, requests = srv->requests, active = 0;
    for (may__http_conn_t *c = srv->list; c; c = c->next) {
        reads += atomic_load_explicit(&c->reads, memory_order_relaxed);
        writes += atomic_load_explicit(&c->writes, memory_order_relaxed);
        requests += atomic_load_explicit(&c->requests, memory_order_relaxed);
        active += atomic_load_explicit(&c->active, memory_order_relaxed);
    }
    pthread_mutex_unlock(&srv->list_lock);
    out->conns = atomic_load_explicit(&srv->nconns, memory_order_relaxed);
    out->accepted = atomic_load_explicit(&srv->accepted, memory_order_relaxed);
    out->requests = requests;
    out->reads = reads;
    out->writes = writes;
    out->active = active;
}
