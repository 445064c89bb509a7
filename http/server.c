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
 * head is copied into an arena as llhttp hands it over in pieces (a head
 * may span reads, and llhttp keeps no pointer into the read buffer), so the
 * handler sees NUL-terminated strings; the body goes to its own buffer.
 * Both grow on demand up to head_max and body_max and are freed with the
 * active block.
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
 * Shutdown.  Every connection is on the server's list (list_lock, a
 * may_mutex) with whether it is idle.  may_http_stop stops the accept
 * loop, cancels the idle connections and marks the rest to close after
 * their current response; at its deadline it cancels the rest.  A wait
 * group counts the connection coroutines; the semaphore `room` holds
 * max_conns tokens, one per open connection, so the accept loop waits
 * while the server is full.
 *
 * Lock order: list_lock only, never held across a wait; conn_t fields
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

typedef struct hdr {
    uint32_t name, value; /* arena offsets of NUL-terminated strings */
} hdr_t;

struct may__http_conn {
    may_http_server_t *srv;
    int fd;
    void *io;          /* the transport's connection state */
    may_co_t *co;      /* this coroutine, for may_http_stop's cancel */
    may__http_conn_t *prev, *next; /* the server's list (list_lock) */
    atomic_bool idle;  /* waiting between requests: see set_idle */

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

    /* The request being read (the arena's strings; see the essay). */
    char *arena;
    size_t alen, acap;
    size_t head_len;   /* bytes of request line and headers so far */
    uint32_t target, target_len, path, path_len, query, query_len, method;
    hdr_t *hdrs;
    size_t nhdrs, hcap;
    bool in_field;     /* the arena's open string is a header name */
    int nhost;
    char *body;
    size_t blen, bcap;

    /* The response. */
    int status;
    bool answered;     /* the head went out (or is in wbuf) */
    bool streaming;    /* may_http_write began a body of unknown length */
    bool chunked;      /* ... as chunks (HTTP/1.1) */
    bool ended;        /* the response is complete */
    bool head_only;    /* HEAD: no body bytes */
    char *rh;          /* the user's header lines */
    size_t rhlen, rhcap;

    void (*at_end)(void *); /* ws.c's cleanup, run when the handler returns */
    void *at_end_arg;

    may_http_req_t req;
    may_http_res_t res;
};

/* ---- The Date header: one writer (the clock coroutine), a seqlock ------ */

static atomic_uint date_seq;
static _Atomic uint64_t date_words[4]; /* 32 bytes >= DATE_LEN */
static atomic_int date_users;          /* servers running a clock */
static may_co_t *date_clock;           /* under date_users' 0 -> 1 winner */

static void date_update(void)
{
    char s[32] = { 0 };
    struct tm tm;
    time_t now = time(NULL);
    strftime(s, sizeof s, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
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

static void *date_loop(void *arg)
{
    (void)arg;
    for (;;) {
        date_update();
        struct timespec ts; /* wake just past the next second */
        clock_gettime(CLOCK_REALTIME, &ts);
        if (may_sleep(1000000000LL - ts.tv_nsec + NS_MS) == -ECANCELED)
            return NULL;
    }
}

/* The clock runs while any server does.  Starting and stopping servers is
 * rare; a mutex keeps the 0 <-> 1 transitions in order. */
static may_mutex_t *date_lock;
static pthread_once_t date_once = PTHREAD_ONCE_INIT;
static void date_init(void)
{
    may_mutex_new(&date_lock);
}

static int date_start(void)
{
    pthread_once(&date_once, date_init);
    if (!date_lock)
        return -ENOMEM;
    may_mutex_lock(date_lock, MAY_FOREVER);
    int r = 0;
    if (atomic_load(&date_users) == 0) {
        date_update();
        r = may_spawn(&date_clock, date_loop, NULL, &(may_spawn_opts_t){ .name = "http-date" });
    }
    if (r == 0)
        atomic_fetch_add(&date_users, 1);
    may_mutex_unlock(date_lock);
    return r;
}

static void date_stop(void)
{
    may_mutex_lock(date_lock, MAY_FOREVER);
    if (atomic_fetch_sub(&date_users, 1) == 1) {
        may_cancel(date_clock);
        may_join(date_clock, NULL, MAY_FOREVER);
        date_clock = NULL;
    }
    may_mutex_unlock(date_lock);
}

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
    atomic_fetch_add_explicit(&c->srv->writes, 1, memory_order_relaxed);
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
    atomic_fetch_add_explicit(&c->srv->active, 1, memory_order_relaxed);
    return true;
}

static void release_request(may__http_conn_t *c)
{
    free(c->arena);
    free(c->hdrs);
    free(c->body);
    c->arena = NULL;
    c->hdrs = NULL;
    c->body = NULL;
    c->acap = c->hcap = c->bcap = 0;
}

static void deactivate(may__http_conn_t *c)
{
    if (c->rbuf)
        atomic_fetch_sub_explicit(&c->srv->active, 1, memory_order_relaxed);
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

/* Append n bytes to the arena (the open string). */
static int arena_put(may__http_conn_t *c, const char *at, size_t n)
{
    if (c->acap - c->alen < n + 1) {
        size_t cap = c->acap ? c->acap : 1024;
        while (cap - c->alen < n + 1)
            cap *= 2;
        char *a = realloc(c->arena, cap);
        if (!a)
            return -1;
        c->arena = a;
        c->acap = cap;
    }
    memcpy(c->arena + c->alen, at, n);
    c->alen += n;
    return 0;
}

/* Append a copy of n bytes already in the arena, at offset off. */
static int arena_copy(may__http_conn_t *c, size_t off, size_t n)
{
    if (arena_put(c, "", 0) < 0 || c->acap - c->alen < n + 1) {
        size_t cap = c->acap;
        while (cap - c->alen < n + 1)
            cap *= 2;
        char *a = realloc(c->arena, cap);
        if (!a)
            return -1;
        c->arena = a;
        c->acap = cap;
    }
    memcpy(c->arena + c->alen, c->arena + off, n);
    c->alen += n;
    return 0;
}

/* Close the open string; its offset is returned through *off. */
static int arena_end(may__http_conn_t *c, uint32_t start, uint32_t *off, uint32_t *len)
{
    if (arena_put(c, "", 0) < 0) /* room for the NUL */
        return -1;
    c->arena[c->alen++] = '\0';
    *off = start;
    if (len)
        *len = (uint32_t)(c->alen - 1 - start);
    return 0;
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
    size_t need = 64 + c->srv->server_name_len + DATE_LEN + c->rhlen + 64;
    int r = reserve(c, need);
    if (r < 0)
        return r;
    if (c->srv->stopping && !c->close)
        c->close = true;
    char *p = c->wbuf + c->wlen;
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
    date_copy(p);
    p += DATE_LEN;
    p = PUT(p, "\r\n");
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
    atomic_fetch_add_explicit(&c->srv->writes, 1, memory_order_relaxed);
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
    const char *rs = reason(status);
    char body[64];
    int n = snprintf(body, sizeof body, "%s\n", rs);
    static const char ct[] = "Content-Type: text/plain\r\n";
    c->rh = c->rh ? c->rh : malloc(sizeof ct);
    if (c->rh) {
        if (c->rhcap < sizeof ct)
            c->rhcap = sizeof ct;
        memcpy(c->rh, ct, sizeof ct - 1);
        c->rhlen = sizeof ct - 1;
    }
    if (put_head(c, n) == 0)
        put_body(c, body, (size_t)n);
    c->ended = true;
    atomic_fetch_add_explicit(&c->srv->requests, 1, memory_order_relaxed);
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

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

MAY_API int may_http_add_header(may_http_res_t *res, const char *name, const char *value)
{
    if (!res || !name || !value || !*name)
        return -EINVAL;
    may__http_conn_t *c = res->c;
    if (c->answered)
        return -EALREADY;
    for (const char *s = name; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return -EINVAL;
    if (strpbrk(value, "\r\n"))
        return -EINVAL;
    static const char *const own[] = { "server", "date", "content-length", "transfer-encoding",
                                       "connection" };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strcasecmp(name, own[i]) == 0)
            return -EINVAL;
    size_t nn = strlen(name), vn = strlen(value), need = c->rhlen + nn + vn + 4;
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
    atomic_fetch_add_explicit(&c->srv->requests, 1, memory_order_relaxed);
    return r;
}

MAY_API int may_http_respond(may_http_res_t *res, int status, const char *content_type,
                             const void *body, size_t len)
{
    int r = may_http_status(res, status);
    if (r == 0 && content_type)
        r = may_http_add_header(res, "Content-Type", content_type);
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
    atomic_fetch_add_explicit(&c->srv->requests, 1, memory_order_relaxed);
    if (c->chunked && !c->head_only && !bodiless(c->status))
        return put_body(c, "0\r\n\r\n", 5);
    return c->failed ? -EPIPE : 0;
}

/* ---- The public request calls ------------------------------------------- */

MAY_API const char *may_http_method(const may_http_req_t *req)
{
    return req->c->arena + req->c->method;
}

static const char *arena_str(const may__http_conn_t *c, uint32_t off, uint32_t n, size_t *len)
{
    if (len)
        *len = n;
    return c->arena + off;
}

MAY_API const char *may_http_target(const may_http_req_t *req, size_t *len)
{
    return arena_str(req->c, req->c->target, req->c->target_len, len);
}

MAY_API const char *may_http_path(const may_http_req_t *req, size_t *len)
{
    return arena_str(req->c, req->c->path, req->c->path_len, len);
}

MAY_API const char *may_http_query(const may_http_req_t *req, size_t *len)
{
    return arena_str(req->c, req->c->query, req->c->query_len, len);
}

MAY_API int may_http_version(const may_http_req_t *req)
{
    return req->c->parser.http_major * 10 + req->c->parser.http_minor;
}

MAY_API const char *may_http_header(const may_http_req_t *req, const char *name, size_t *len)
{
    const may__http_conn_t *c = req->c;
    for (size_t i = 0; i < c->nhdrs; i++)
        if (strcasecmp(c->arena + c->hdrs[i].name, name) == 0) {
            const char *v = c->arena + c->hdrs[i].value;
            if (len)
                *len = strlen(v);
            return v;
        }
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
        *name = c->arena + c->hdrs[i].name;
    if (value)
        *value = c->arena + c->hdrs[i].value;
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
    c->alen = c->nhdrs = c->blen = c->head_len = 0;
    c->in_field = false;
    c->nhost = 0;
    c->err_status = 0;
    c->status = 200;
    c->answered = c->streaming = c->chunked = c->ended = false;
    c->rhlen = 0;
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
    if (count_head(c, n, 414) < 0 || arena_put(c, at, n) < 0)
        return -1;
    return 0;
}

/* The target is complete: keep it, then split path and query (an
 * absolute-form target's path is after its authority). */
static int on_url_complete(llhttp_t *p)
{
    may__http_conn_t *c = conn_of(p);
    if (arena_end(c, 0, &c->target, &c->target_len) < 0)
        return -1;
    const char *t = c->arena + c->target, *path = t, *end = t + c->target_len;
    const char *scheme = strstr(t, "://");
    if (*t != '/' && scheme) {
        path = memchr(scheme + 3, '/', (size_t)(end - scheme - 3));
        if (!path)
            path = end;
    }
    const char *q = memchr(path, '?', (size_t)(end - path));
    /* offsets: the copies below may move the arena */
    size_t poff = (size_t)(path - c->arena), plen = (size_t)((q ? q : end) - path);
    size_t qoff = q ? (size_t)(q + 1 - c->arena) : 0, qlen = q ? (size_t)(end - q - 1) : 0;
    uint32_t start = (uint32_t)c->alen;
    if (plen == 0) { /* "http://host" means "/" */
        if (arena_put(c, "/", 1) < 0)
            return -1;
    } else if (arena_copy(c, poff, plen) < 0) {
        return -1;
    }
    if (arena_end(c, start, &c->path, &c->path_len) < 0)
        return -1;
    start = (uint32_t)c->alen;
    if (arena_copy(c, qoff, qlen) < 0 || arena_end(c, start, &c->query, &c->query_len) < 0)
        return -1;
    /* the method's name, for may_http_method */
    const char *m = llhttp_method_name((llhttp_method_t)p->method);
    start = (uint32_t)c->alen;
    if (arena_put(c, m, strlen(m)) < 0 || arena_end(c, start, &c->method, NULL) < 0)
        return -1;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    may__http_conn_t *c = conn_of(p);
    if (count_head(c, n, 431) < 0)
        return -1;
    if (c->nhdrs == c->hcap) {
        size_t cap = c->hcap ? c->hcap * 2 : 16;
        hdr_t *h = realloc(c->hdrs, cap * sizeof *h);
        if (!h)
            return -1;
        c->hdrs = h;
        c->hcap = cap;
    }
    if (!c->in_field) { /* the first piece of a name */
        c->in_field = true;
        c->hdrs[c->nhdrs].name = (uint32_t)c->alen;
    }
    return arena_put(c, at, n);
}

static int on_header_field_complete(llhttp_t *p)
{
    may__http_conn_t *c = conn_of(p);
    hdr_t *h = &c->hdrs[c->nhdrs];
    c->in_field = false;
    /* RFC 9112 5.1: no whitespace between a name and its colon (a request
     * smuggling vector).  llhttp 8 accepts it, keeping it in the name. */
    char last = c->alen > h->name ? c->arena[c->alen - 1] : 0;
    if (last == ' ' || last == '\t') {
        c->err_status = 400;
        return -1;
    }
    if (arena_end(c, h->name, &h->name, NULL) < 0)
        return -1;
    h->value = (uint32_t)c->alen;
    if (strcasecmp(c->arena + h->name, "host") == 0)
        c->nhost++;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    may__http_conn_t *c = conn_of(p);
    if (count_head(c, n, 431) < 0)
        return -1;
    return arena_put(c, at, n);
}

static int on_header_value_complete(llhttp_t *p)
{
    may__http_conn_t *c = conn_of(p);
    hdr_t *h = &c->hdrs[c->nhdrs];
    if (arena_end(c, h->value, &h->value, NULL) < 0)
        return -1;
    c->nhdrs++;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    may__http_conn_t *c = conn_of(p);
    const may_http_config_t *cfg = &c->srv->cfg;
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
    const char *expect = may_http_header(&c->req, "expect", NULL);
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0) {
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
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
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
        if (e == HPE_OK)
            return !c->close && !c->failed;
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
        int status = c->err_status ? c->err_status : e == HPE_INVALID_VERSION ? 505 : 400;
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
    atomic_store(&c->idle, idle);
    if (idle && atomic_load(&c->srv->stopping))
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
        atomic_fetch_add_explicit(&c->srv->reads, 1, memory_order_relaxed);
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

typedef struct conn_start {
    may_http_server_t *srv;
    int fd;
} conn_start_t;

static void *conn_run(void *arg)
{
    conn_start_t *st = arg;
    may__http_conn_t conn, *c = &conn;
    memset(c, 0, sizeof *c);
    c->srv = st->srv;
    c->fd = st->fd;
    free(st);
    may_http_server_t *srv = c->srv;
    c->co = may_self();
    c->first = true;
    c->req.c = c;
    c->res.c = c;
    c->status = 200;
    c->now = may_now();
    c->dl = c->now + srv->cfg.header_timeout_ms * NS_MS;
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;

    may_mutex_lock(srv->list_lock, MAY_FOREVER);
    c->next = srv->list;
    if (srv->list)
        srv->list->prev = c;
    srv->list = c;
    may_mutex_unlock(srv->list_lock);

    const may_http_transport_t *t = srv->cfg.transport;
    if (!t || !t->open || t->open(srv->cfg.transport_arg, c->fd, &c->io, c->dl) == 0)
        serve(c);
    may_tcp_close(c->fd);
    if (t && t->close)
        t->close(c->io);
    deactivate(c);
    c->in_msg = false;
    release_request(c);

    may_mutex_lock(srv->list_lock, MAY_FOREVER);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    may_mutex_unlock(srv->list_lock);
    atomic_fetch_sub_explicit(&srv->nconns, 1, memory_order_relaxed);
    may_sem_post(srv->room);
    may_wg_done(srv->wg);
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
    int r = may_spawn(NULL, conn_run, st,
                      &(may_spawn_opts_t){ .flags = MAY_SPAWN_DETACHED,
                                           .stack_size = srv->cfg.stack_size });
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

static void srv_free(may_http_server_t *srv)
{
    may_sem_free(srv->room);
    may_wg_free(srv->wg);
    may_mutex_free(srv->list_lock);
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
    if ((r = may_sem_new(&srv->room, c->max_conns)) < 0 || (r = may_wg_new(&srv->wg)) < 0 ||
        (r = may_mutex_new(&srv->list_lock)) < 0)
        goto out_free;
    if ((r = date_start()) < 0)
        goto out_free;
    if (lfd >= 0 && (r = may_spawn(&srv->accept, accept_loop, srv,
                                   &(may_spawn_opts_t){ .name = "http-accept" })) < 0)
        goto out_date;
    *out = srv;
    return 0;
out_date:
    date_stop();
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
        may_join(srv->accept, NULL, MAY_FOREVER);
    }
    may_mutex_lock(srv->list_lock, MAY_FOREVER);
    atomic_store(&srv->stopping, true); /* seq_cst: see set_idle */
    for (may__http_conn_t *c = srv->list; c; c = c->next)
        if (atomic_load(&c->idle))
            may_cancel(c->co);
    may_mutex_unlock(srv->list_lock);
    int r = may_wg_wait(srv->wg, deadline);
    if (r < 0) {
        may_mutex_lock(srv->list_lock, MAY_FOREVER);
        for (may__http_conn_t *c = srv->list; c; c = c->next)
            may_cancel(c->co);
        may_mutex_unlock(srv->list_lock);
        may_wg_wait(srv->wg, MAY_FOREVER);
        r = -ETIMEDOUT;
    }
    date_stop();
    srv_free(srv);
    return r;
}

MAY_API void may_http_stats(may_http_server_t *srv, may_http_stats_t *out)
{
    out->conns = atomic_load_explicit(&srv->nconns, memory_order_relaxed);
    out->accepted = atomic_load_explicit(&srv->accepted, memory_order_relaxed);
    out->requests = atomic_load_explicit(&srv->requests, memory_order_relaxed);
    out->reads = atomic_load_explicit(&srv->reads, memory_order_relaxed);
    out->writes = atomic_load_explicit(&srv->writes, memory_order_relaxed);
    out->active = atomic_load_explicit(&srv->active, memory_order_relaxed);
}
