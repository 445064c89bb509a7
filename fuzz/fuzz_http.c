/* fuzz_http.c - fuzz libmay_http's request path (http/server.c and llhttp).
 *
 * The input is the byte stream a client sends on one connection.  The
 * server is the library itself, through its public API only: started once
 * (may_http_start with no listening socket; head_max and body_max small, so
 * that inputs reach the limits) with a transport (may_http_transport_t,
 * `buffered`, so the server reads through it without waiting on the fd)
 * whose reads and writes are in memory.  Each run hands the server a real
 * fd with may_http_serve_conn: one end of a socketpair whose peer is
 * already closed, so the lingering close (may_tcp_shutdown, the drain,
 * may_tcp_close) runs for real and finds EOF at once.  The handler is
 * examples/http.c's (/plaintext, /json, /echo: the body back, else 404),
 * wrapped to add X-Path and X-Query headers (escaped: fz_escape): the
 * request's view (may_http_path, may_http_query) is checked too.  A
 * coroutine, on a runtime of one worker, serves each input four times with
 * different read boundaries, waiting each time for the transport's close
 * callback, which the server calls once at the end of a connection; the
 * checks run after it, on the fuzzer's thread:
 *
 *   1. reads of up to what the server asks for (16 KiB), then EOF;
 *   2. one byte per read (inputs up to 512 bytes);
 *   3. reads cut at pseudo-random points derived from a hash of the input
 *      (so an input always replays the same way), ending in EOF, a reset
 *      (-ECONNRESET) or a read timeout (-ETIMEDOUT);
 *   4. as 3, with the k-th write failing (-EPIPE).
 *
 * The model.  A separate llhttp parser reads the whole input at once and
 * predicts the responses (the spec, restated from may_http.h):
 * - one per complete request, in order: 200 with the route's body for
 *   /plaintext and /json, the request body for /echo, else 404; the path is
 *   the target's (an absolute-form target "scheme://authority/p?q" gives
 *   /p, its authority ending at the first '/' or '?'); no body for HEAD;
 * - "HTTP/1.1 100 Continue" before the final response when an HTTP/1.1
 *   request says Expect: 100-continue and announces a body;
 * - the library's refusals, each closing the connection: 505 for a version
 *   other than 1.0 and 1.1; 400 for HTTP/1.1 without Host, two Hosts,
 *   whitespace before a header's colon, CONNECT or a malformed request;
 *   414 when the target passes head_max, 431 when the rest of the head
 *   does; 413 when the body passes body_max (at once if Content-Length
 *   says so); 417 for an Expect other than 100-continue (on any of its
 *   lines: the field is a list); 408 when the read times out with part of
 *   a request read;
 * - an Upgrade request (h2c, websocket) is answered by the handler like any
 *   other and parsing goes on after it (this handler never takes over);
 * - nothing after a response that closes: a refusal, Connection: close, or
 *   HTTP/1.0 without keep-alive (HTTP/1.0 kept alive gets Connection:
 *   keep-alive).
 * Each response is parsed back with an HTTP_RESPONSE parser: HTTP/1.1, the
 * status and its reason, Server, a well-formed Date, the Content-Type,
 * Content-Length equal to the body, Connection exactly as predicted, the
 * X- headers, nothing else, and nothing after the last response.
 *
 * Invariants checked (abort() on a violation, so libFuzzer reports it):
 * - Runs 1-3 write the same bytes (their Date values aside, which the
 *   server's clock may advance between runs): the answer does not depend on
 *   how the stream was cut into reads (but for a request both malformed and
 *   over head_max: 400 or 414/431, see model_alt).  Run 4 writes a prefix.
 * - One write per read batch: two writes without a read between them only
 *   when the first ended a 100 Continue, or the second begins the answer to
 *   an Upgrade request (the answers before it go out first), or the buffer
 *   was full (the head the second begins with did not fit beside the
 *   first, or both together are over it: a body that did not fit).  No
 *   write over 16 KiB (only a body over 8 KiB would be written directly,
 *   and body_max is below that).
 * - Nothing is written after a failed write, the shutdown or the close; no
 *   read after the end of input, a failed write, the shutdown or the close.
 * - The transport's shutdown (before a graceful close) happens exactly
 *   when the server chose to close (a closing response, a refusal, a 408)
 *   and never after a failed write; its close happens exactly once, after
 *   the fd was closed.
 * - may_http_stats counts the connection, its reads, writes and requests.
 *
 * What it found in http/server.c, each with a seed now: absolute-form
 * targets split wrongly (a '?' in the authority; "*x://" taken for a
 * scheme), HTTP/2's preface answered 400, Expect read from its last line
 * only, a one-byte over-read when the arena moved (three reads of one
 * head), control characters let into header values.
 */
#define HTTP_NO_MAIN
#include "../examples/http.c" /* http_handler: the routes */

#include <errno.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define FZ_CHECK(cond)                                                            \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "fuzz_http: %s:%d: invariant failed: %s\n", __FILE__, \
                    __LINE__, #cond);                                             \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* The server's configuration for the fuzzer, and what the model knows of
 * the server's buffers (http/server.c). */
#define FZ_HEAD_MAX 2048
#define FZ_BODY_MAX 4096
#define FZ_WBUF 16384     /* the server's write buffer */
#define FZ_HEAD_SLACK 256 /* a head needs less room than its length plus this */
#define FZ_DATE_LEN 29    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define FZ_HANG_NS 4000000000LL /* a longer run is a hang (before libFuzzer's 10 s) */
#define FZ_BYTES_MAX 512  /* run 2 (a read per byte) for inputs up to this */

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* ---- The in-memory connection -------------------------------------------- */

enum { CUT_WHOLE, CUT_BYTES, CUT_HASH };

typedef struct fz_write {
    size_t len;
    int batch; /* reads before it: writes of one batch have the same */
} fz_write_t;

typedef struct fz_conn {
    const uint8_t *in;
    size_t in_len, in_pos;
    int cut;             /* CUT_* */
    uint64_t rng;        /* CUT_HASH: cut points, from the input's hash */
    int end_err;         /* the last read: 0 (EOF), -ECONNRESET or -ETIMEDOUT */
    int fail_write;      /* this write (1-based) fails; 0: none does */
    int fd;              /* the server's end of the socketpair */
    ino_t ino;           /* its inode: to tell "closed" from "number reused" */
    may_event_t *done;   /* fired by the close callback */
    /* what the server did */
    char *out;
    size_t out_len, out_cap;
    fz_write_t *w;
    int nw, wcap;        /* writes (the failed one included) */
    int reads, data_reads;
    uint64_t requests;   /* may_http_stats' count for this connection */
    bool opened, got_end, write_failed, shut, closed;
} fz_conn;

static fz_conn *fz_cur; /* the run in progress (one at a time) */

static uint64_t fz_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h ? h : 1;
}

static uint64_t fz_rand(uint64_t *s)
{
    uint64_t x = *s; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int fz_open(void *arg, int fd, void **conn, int64_t deadline)
{
    fz_conn *f = arg == NULL ? fz_cur : NULL;
    FZ_CHECK(f && !f->opened && fd == f->fd && deadline > 0);
    f->opened = true;
    *conn = f;
    return 0;
}

static ssize_t fz_read(void *conn, int fd, void *buf, size_t n, int64_t deadline)
{
    fz_conn *f = conn;
    FZ_CHECK(f == fz_cur && f->opened && fd == f->fd);
    FZ_CHECK(!f->closed && !f->shut && !f->write_failed);
    FZ_CHECK(!f->got_end); /* no read after the end of input or an error */
    FZ_CHECK(n > 0 && deadline > 0);
    f->reads++;
    size_t left = f->in_len - f->in_pos;
    if (left == 0) {
        f->got_end = true;
        return f->end_err;
    }
    size_t k = left < n ? left : n;
    if (f->cut == CUT_BYTES) {
        k = 1;
    } else if (f->cut == CUT_HASH) {
        uint64_t r = fz_rand(&f->rng);
        size_t m = (r & 3) == 0 ? 1 : (r & 3) == 1 ? 8 : (r & 3) == 2 ? 64 : 1024;
        size_t want = 1 + (size_t)((r >> 8) % m);
        if (want < k)
            k = want;
    }
    memcpy(buf, f->in + f->in_pos, k);
    f->in_pos += k;
    f->data_reads++;
    return (ssize_t)k;
}

static int fz_write_all(void *conn, int fd, const void *buf, size_t n, int64_t deadline)
{
    fz_conn *f = conn;
    FZ_CHECK(f == fz_cur && f->opened && fd == f->fd);
    FZ_CHECK(!f->closed && !f->shut && !f->write_failed);
    FZ_CHECK(n > 0 && n <= FZ_WBUF && deadline > 0);
    FZ_CHECK(f->reads > 0); /* answers follow reads */
    if (f->nw == f->wcap) {
        f->wcap = f->wcap ? 2 * f->wcap : 16;
        f->w = realloc(f->w, (size_t)f->wcap * sizeof *f->w);
        FZ_CHECK(f->w != NULL);
    }
    f->w[f->nw++] = (fz_write_t){ .len = n, .batch = f->reads };
    if (f->nw == f->fail_write) {
        f->write_failed = true;
        return -EPIPE;
    }
    if (f->out_len + n > f->out_cap) {
        size_t cap = f->out_cap ? f->out_cap : 4096;
        while (cap < f->out_len + n)
            cap *= 2;
        char *o = realloc(f->out, cap);
        FZ_CHECK(o != NULL);
        f->out = o;
        f->out_cap = cap;
    }
    memcpy(f->out + f->out_len, buf, n);
    f->out_len += n;
    return 0;
}

static void fz_shutdown(void *conn, int fd)
{
    fz_conn *f = conn;
    FZ_CHECK(f == fz_cur && fd == f->fd);
    FZ_CHECK(!f->closed && !f->shut && !f->write_failed);
    f->shut = true;
}

static void fz_close(void *conn)
{
    fz_conn *f = conn;
    FZ_CHECK(f == fz_cur && f->opened && !f->closed);
    /* the fd is closed (or its number already reused by another file) */
    struct stat st;
    FZ_CHECK(fstat(f->fd, &st) < 0 ? errno == EBADF : st.st_ino != f->ino);
    f->closed = true;
    may_event_fire(f->done);
}

static const may_http_transport_t fz_transport = {
    .open = fz_open,
    .read = fz_read,
    .write_all = fz_write_all,
    .shutdown = fz_shutdown,
    .close = fz_close,
    .buffered = true,
};

/* ---- The server ---------------------------------------------------------- */

/* A header value showing s[0..n): bytes other than '!'..'~' and '%' as
 * %XX (a target may hold bytes that a header value may not: llhttp takes
 * \f in a target, may_http_add_header refuses it in a value). */
static char *fz_escape(const char *s, size_t n)
{
    char *e = malloc(3 * n + 1), *p = e;
    FZ_CHECK(e != NULL);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch > ' ' && ch < 0x7f && ch != '%') {
            *p++ = (char)ch;
        } else {
            *p++ = '%';
            *p++ = "0123456789ABCDEF"[ch >> 4];
            *p++ = "0123456789ABCDEF"[ch & 15];
        }
    }
    *p = '\0';
    return e;
}

/* examples/http.c's routes, and the request's view in two headers. */
static void fz_handler(may_http_req_t *req, may_http_res_t *res, void *arg)
{
    size_t n;
    const char *s = may_http_path(req, &n);
    FZ_CHECK(strlen(s) == n);
    char *e = fz_escape(s, n);
    FZ_CHECK(may_http_add_header(res, "X-Path", e) == 0);
    free(e);
    s = may_http_query(req, &n);
    FZ_CHECK(strlen(s) == n);
    e = fz_escape(s, n);
    FZ_CHECK(may_http_add_header(res, "X-Query", e) == 0);
    free(e);
    http_handler(req, res, arg);
}

static may_http_server_t *fz_srv;
static bool fz_verbose;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    (void)http_start; /* examples/http.c's server: this file makes its own */
    const char *v = getenv("FUZZ_VERBOSE");
    fz_verbose = v && *v && strcmp(v, "0") != 0;
    /* one worker: the driver and the connection take turns, no thread hops */
    FZ_CHECK(may_configure(&(may_config_t){ .workers = 1 }) == 0);
    FZ_CHECK(may_http_start(&fz_srv, -1,
                            &(may_http_config_t){ .handler = fz_handler,
                                                  .head_max = FZ_HEAD_MAX,
                                                  .body_max = FZ_BODY_MAX,
                                                  .transport = &fz_transport }) == 0);
    return 0;
}

/* After the replay (replay_main.c): the server and the runtime stop. */
void fuzz_replay_done(void);
void fuzz_replay_done(void)
{
    may_http_stats_t st;
    may_http_stats(fz_srv, &st);
    FZ_CHECK(st.conns == 0 && st.active == 0);
    FZ_CHECK(may_http_stop(fz_srv, may_deadline_in(5000000000LL)) == 0);
    FZ_CHECK(may_shutdown() == 0);
}

/* Serve one connection whose client sends in[0..n), in the driver
 * coroutine; returns once the connection is gone. */
static void fz_serve(fz_conn *f, const uint8_t *in, size_t n, int cut, uint64_t seed,
                     int end_err, int fail_write)
{
    memset(f, 0, sizeof *f);
    f->in = in;
    f->in_len = n;
    f->cut = cut;
    f->rng = seed;
    f->end_err = end_err;
    f->fail_write = fail_write;
    int sv[2];
    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    FZ_CHECK(close(sv[1]) == 0); /* the peer is gone: the linger finds EOF */
    struct stat st;
    FZ_CHECK(fstat(sv[0], &st) == 0);
    f->fd = sv[0];
    f->ino = st.st_ino;
    FZ_CHECK(may_event_new(&f->done) == 0);
    may_http_stats_t before, after;
    may_http_stats(fz_srv, &before);
    FZ_CHECK(before.conns == 0);
    fz_cur = f;
    FZ_CHECK(may_http_serve_conn(fz_srv, f->fd) == 0);
    /* a server that hangs fails here, with every coroutine's state */
    if (may_event_wait(f->done, may_deadline_in(FZ_HANG_NS)) != 0) {
        fprintf(stderr, "fuzz_http: the connection did not end in %lld s\n",
                FZ_HANG_NS / 1000000000LL);
        may_dump(stderr);
        FZ_CHECK(!"hang");
    }
    do { /* the connection coroutine's last steps, after the close */
        may_yield();
        may_http_stats(fz_srv, &after);
    } while (after.conns != 0);
    fz_cur = NULL;
    may_event_free(f->done);
    FZ_CHECK(f->opened && f->closed);
    FZ_CHECK(after.accepted == before.accepted + 1 && after.active == 0);
    FZ_CHECK(after.reads - before.reads == (uint64_t)f->data_reads);
    FZ_CHECK(after.writes - before.writes == (uint64_t)f->nw);
    f->requests = after.requests - before.requests;
}

static void fz_free(fz_conn *f)
{
    free(f->out);
    free(f->w);
}

/* ---- The model: what the server should answer ---------------------------- */

enum { R_PLAIN, R_JSON, R_ECHO, R_404, R_ERROR, R_CONTINUE };

typedef struct fz_resp {
    int route;       /* R_* */
    int status;      /* R_ERROR: the library's status */
    int alt;         /* ... or this one (see model_alt); 0: none */
    bool head;       /* HEAD: no body bytes */
    bool close;      /* Connection: close */
    bool keep10;     /* Connection: keep-alive (HTTP/1.0 kept alive) */
    bool upgrade;    /* the answer to an Upgrade request */
    size_t body, body_len;   /* R_ECHO: the request's body in the pool */
    size_t path, path_len;   /* X-Path, X-Query values in the pool */
    size_t query, query_len;
} fz_resp;

typedef struct fz_model {
    fz_resp *resp;
    int n, cap;
    bool closing;    /* a response that closes was predicted: no more */
    bool in_msg;     /* a request began and was not answered */
    /* the request being parsed */
    int err;         /* the status a callback's refusal is answered with */
    size_t head_len; /* target, header names and values: the server's count */
    char url[FZ_HEAD_MAX + 1];
    size_t url_len;
    char field[16];
    size_t field_len;
    bool field_long;
    char field_last; /* the name's last byte */
    bool field_ws, field_host; /* the name ends in whitespace; is Host */
    int nhost;
    bool has_expect, in_expect;
    char expect[16];
    size_t expect_len;
    bool expect_long;
    bool expect_other; /* an Expect other than 100-continue */
    size_t body_start, body_len; /* in the pool */
    bool have_pending;
    fz_resp pending; /* the answer to an Upgrade request, after the pause */
    /* bodies, paths and queries of the responses */
    char *pool;
    size_t pool_len, pool_cap;
} fz_model;

static size_t pool_put(fz_model *m, const char *s, size_t n)
{
    if (m->pool_cap - m->pool_len < n) {
        size_t cap = m->pool_cap ? m->pool_cap : 4096;
        while (cap - m->pool_len < n)
            cap *= 2;
        m->pool = realloc(m->pool, cap);
        FZ_CHECK(m->pool != NULL);
        m->pool_cap = cap;
    }
    if (n)
        memcpy(m->pool + m->pool_len, s, n);
    m->pool_len += n;
    return m->pool_len - n;
}

static void model_push(fz_model *m, fz_resp r)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->resp = realloc(m->resp, (size_t)m->cap * sizeof *m->resp);
        FZ_CHECK(m->resp != NULL);
    }
    m->resp[m->n++] = r;
}

static int m_begin(llhttp_t *p)
{
    fz_model *m = p->data;
    m->in_msg = true;
    m->err = 0;
    m->head_len = m->url_len = m->field_len = m->expect_len = 0;
    m->field_long = m->has_expect = m->in_expect = m->expect_long = m->expect_other = false;
    m->nhost = 0;
    m->body_start = m->pool_len;
    m->body_len = 0;
    return 0;
}

/* The head limit: the target's bytes, and the header names' and values'
 * (trailers included), as the server counts them. */
static int m_count(fz_model *m, size_t n, int status)
{
    m->head_len += n;
    if (m->head_len > FZ_HEAD_MAX) {
        m->err = status;
        return -1;
    }
    return 0;
}

static int m_url(llhttp_t *p, const char *at, size_t n)
{
    fz_model *m = p->data;
    if (m_count(m, n, 414) < 0)
        return -1;
    memcpy(m->url + m->url_len, at, n); /* fits: url_len <= head_len */
    m->url_len += n;
    return 0;
}

static int m_field(llhttp_t *p, const char *at, size_t n)
{
    fz_model *m = p->data;
    if (m_count(m, n, 431) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (m->field_len < sizeof m->field)
            m->field[m->field_len++] = at[i];
        else
            m->field_long = true;
        m->field_last = at[i];
    }
    return 0;
}

static bool field_is(const fz_model *m, const char *name)
{
    return !m->field_long && m->field_len == strlen(name) &&
           strncasecmp(m->field, name, m->field_len) == 0;
}

/* The name is complete; the line is judged when its value is (a line cut
 * short by the end of input is no request yet). */
static int m_field_done(llhttp_t *p)
{
    fz_model *m = p->data;
    /* whitespace before the colon (llhttp keeps it in the name) */
    m->field_ws = m->field_len && (m->field_last == ' ' || m->field_last == '\t');
    m->field_host = field_is(m, "host");
    if (field_is(m, "expect")) { /* every one counts (a list, RFC 9110 10.1.1) */
        m->has_expect = m->in_expect = true;
        m->expect_len = 0;
    }
    m->field_len = 0;
    m->field_long = false;
    return 0;
}

static int m_value(llhttp_t *p, const char *at, size_t n)
{
    fz_model *m = p->data;
    if (m_count(m, n, 431) < 0)
        return -1;
    for (size_t i = 0; m->in_expect && i < n; i++) {
        if (m->expect_len < sizeof m->expect)
            m->expect[m->expect_len++] = at[i];
        else
            m->expect_long = true;
    }
    return 0;
}

static int m_value_done(llhttp_t *p)
{
    fz_model *m = p->data;
    if (m->field_ws) { /* 400, at the end of the line */
        m->err = 400;
        return -1;
    }
    m->nhost += m->field_host;
    static const char c100[] = "100-continue";
    if (m->in_expect && (m->expect_long || m->expect_len != sizeof c100 - 1 ||
                         strncasecmp(m->expect, c100, m->expect_len) != 0))
        m->expect_other = true;
    m->in_expect = m->expect_long = false;
    return 0;
}

static int m_headers_done(llhttp_t *p)
{
    fz_model *m = p->data;
    if (p->http_major != 1 || p->http_minor > 1) {
        m->err = 505;
        return -1;
    }
    if ((p->http_minor == 1 && m->nhost == 0) || m->nhost > 1 || p->method == HTTP_CONNECT) {
        m->err = 400;
        return -1;
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > FZ_BODY_MAX) {
        m->err = 413;
        return -1;
    }
    if (m->has_expect) {
        if (m->expect_other) {
            m->err = 417;
            return -1;
        }
        if (p->http_minor == 1 && ((p->flags & F_CHUNKED) || p->content_length > 0))
            model_push(m, (fz_resp){ .route = R_CONTINUE, .status = 100 });
    }
    return 0;
}

static int m_body(llhttp_t *p, const char *at, size_t n)
{
    fz_model *m = p->data;
    if (m->body_len + n > FZ_BODY_MAX) {
        m->err = 413;
        return -1;
    }
    pool_put(m, at, n); /* nothing else goes in the pool meanwhile */
    m->body_len += n;
    return 0;
}

static bool alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* The target's path and query.  Absolute-form is
 * ALPHA *(ALPHA / DIGIT / "+" / "-" / ".") "://" authority [path] ["?" query]
 * (RFC 3986; its authority ends at the first '/' or '?', an empty path is
 * "/"); anything else (origin-form, "*") is its own path up to the '?'. */
static void model_split(fz_model *m, fz_resp *r)
{
    const char *t = m->url, *end = t + m->url_len, *path = t;
    if (m->url_len && alpha(t[0])) {
        const char *s = t + 1;
        while (s < end && (alpha(*s) || (*s >= '0' && *s <= '9') || *s == '+' || *s == '-' ||
                           *s == '.'))
            s++;
        if (end - s >= 3 && memcmp(s, "://", 3) == 0) {
            path = s + 3;
            while (path < end && *path != '/' && *path != '?')
                path++;
        }
    }
    const char *q = memchr(path, '?', (size_t)(end - path));
    size_t plen = (size_t)((q ? q : end) - path);
    if (plen == 0) {
        r->path = pool_put(m, "/", 1);
        r->path_len = 1;
    } else {
        r->path = pool_put(m, path, plen); /* path points into m->url */
        r->path_len = plen;
    }
    r->query_len = q ? (size_t)(end - q - 1) : 0;
    r->query = pool_put(m, q ? q + 1 : "", r->query_len);
}

static bool path_is(const fz_model *m, const fz_resp *r, const char *s)
{
    return r->path_len == strlen(s) && memcmp(m->pool + r->path, s, r->path_len) == 0;
}

static int m_complete(llhttp_t *p)
{
    fz_model *m = p->data;
    fz_resp r = {
        .head = p->method == HTTP_HEAD,
        .close = !llhttp_should_keep_alive(p),
        .upgrade = p->upgrade,
        .body = m->body_start,
        .body_len = m->body_len,
    };
    r.keep10 = p->http_minor == 0 && !r.close;
    model_split(m, &r);
    r.route = path_is(m, &r, "/plaintext") ? R_PLAIN
              : path_is(m, &r, "/json")    ? R_JSON
              : path_is(m, &r, "/echo")    ? R_ECHO
                                           : R_404;
    r.status = r.route == R_404 ? 404 : 200;
    if (p->upgrade) { /* answered after llhttp_execute returns */
        m->pending = r;
        m->have_pending = true;
        return 0;
    }
    model_push(m, r);
    m->in_msg = false;
    if (r.close) {
        m->closing = true;
        return HPE_PAUSED; /* parse nothing after it */
    }
    return 0;
}

static const llhttp_settings_t model_settings = {
    .on_message_begin = m_begin,
    .on_url = m_url,
    .on_header_field = m_field,
    .on_header_field_complete = m_field_done,
    .on_header_value = m_value,
    .on_header_value_complete = m_value_done,
    .on_headers_complete = m_headers_done,
    .on_body = m_body,
    .on_message_complete = m_complete,
};

static void model_error(fz_model *m, int status)
{
    model_push(m, (fz_resp){ .route = R_ERROR, .status = status, .close = true });
    m->closing = true;
}

/* Parse the input, fed to llhttp in pieces of `piece` bytes: the expected
 * responses. */
static void model_run(fz_model *m, const uint8_t *in, size_t size, size_t piece)
{
    llhttp_t p;
    llhttp_init(&p, HTTP_REQUEST, &model_settings);
    p.data = m;
    const char *buf = (const char *)in, *end = buf + size;
    while (buf < end) { /* (llhttp_execute(NULL, 0) is undefined) */
        size_t n = (size_t)(end - buf) < piece ? (size_t)(end - buf) : piece;
        llhttp_errno_t e = llhttp_execute(&p, buf, n);
        if (e == HPE_OK) {
            buf += n;
            continue;
        }
        if (e == HPE_PAUSED) /* after a closing answer */
            break;
        if (e == HPE_PAUSED_UPGRADE && m->have_pending) {
            m->have_pending = false;
            model_push(m, m->pending);
            m->in_msg = false;
            if (m->pending.close) {
                m->closing = true;
                break;
            }
            buf = llhttp_get_error_pos(&p); /* just after the request */
            llhttp_resume_after_upgrade(&p);
            continue;
        }
        /* A malformed request, or a refusal from a callback.  HTTP/2's
         * preface ("PRI * HTTP/2.0") is a version the server does not
         * speak: 505, as any other. */
        model_error(m, m->err                      ? m->err
                       : e == HPE_INVALID_VERSION  ? 505
                       : e == HPE_PAUSED_H2_UPGRADE ? 505
                                                   : 400);
        break;
    }
}

/* A request both malformed and over head_max may get 400 or the limit's
 * status (414, 431), depending on the reads: llhttp hands the target or a
 * header over in pieces at the end of each read, so the server counts the
 * bytes read so far against head_max, but when the whole head is in one
 * read, llhttp reports a bad byte in it before handing the piece before
 * it over.  (A 400 from one read and a 414 from two is no harm: both
 * close.)  Parsing a byte at a time finds the limit as early as any
 * reads can: that answer is the alternative. */
static void model_alt(fz_model *m, const uint8_t *in, size_t size)
{
    fz_resp *last = m->n ? &m->resp[m->n - 1] : NULL;
    if (!last || last->route != R_ERROR || last->status != 400)
        return;
    fz_model b = { 0 };
    model_run(&b, in, size, 1);
    const fz_resp *bl = b.n ? &b.resp[b.n - 1] : NULL;
    if (b.n == m->n && bl->route == R_ERROR && (bl->status == 414 || bl->status == 431))
        last->alt = bl->status;
    free(b.resp);
    free(b.pool);
}

/* ---- Checking the server's output ---------------------------------------- */

static const char fixed_date[] = "Thu, 01 Jan 1970 00:00:00 GMT";

typedef struct fz_check {
    const fz_model *m;
    char *out;          /* the output: Date values are overwritten */
    size_t out_len;
    int begun, done;    /* responses started / complete */
    size_t *start;      /* each response's offset in out */
    size_t field_len;
    bool field_long;
    char field[32];
    const char *value;  /* the whole output is parsed at once: one piece */
    size_t value_len;
    unsigned seen;      /* headers seen (H_*) */
    int status;         /* the response's status */
    size_t body_pos;
} fz_check;

enum { H_SERVER = 1, H_DATE = 2, H_TYPE = 4, H_LENGTH = 8, H_CONN = 16, H_PATH = 32, H_QUERY = 64 };

static const char *route_type(int route)
{
    return route == R_JSON ? "application/json"
           : route == R_ECHO ? "application/octet-stream"
                             : "text/plain";
}

static const char *reason_of(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 505: return "HTTP Version Not Supported";
    default: FZ_CHECK(!"a status the model does not predict"); return "";
    }
}

/* The body a response carries (HEAD aside), in *len. */
static const char *route_body(const fz_model *m, const fz_resp *r, int status, size_t *len,
                              char *tmp)
{
    const char *b;
    switch (r->route) {
    case R_PLAIN: b = "Hello, World!"; break;
    case R_JSON: b = "{\"message\":\"Hello, World!\"}"; break;
    case R_404: b = "Not Found\n"; break;
    case R_ECHO:
        *len = r->body_len;
        return m->pool + r->body;
    case R_ERROR:
        *len = (size_t)snprintf(tmp, 64, "%s\n", reason_of(status));
        return tmp;
    default: b = ""; break;
    }
    *len = strlen(b);
    return b;
}

static const fz_resp *cur_resp(const fz_check *k)
{
    FZ_CHECK(k->begun >= 1 && k->begun <= k->m->n); /* no response too many */
    return &k->m->resp[k->begun - 1];
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static bool date_ok(const char *s, size_t n)
{
    static const char pat[] = "AAA, 00 AAA 0000 00:00:00 GMT"; /* A: letter, 0: digit */
    if (n != FZ_DATE_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char p = pat[i], c = s[i];
        if (p == 'A' ? !alpha(c) : p == '0' ? !(c >= '0' && c <= '9') : c != p)
            return false;
    }
    return true;
}

static bool value_is(const fz_check *k, const char *s, size_t n)
{
    return k->value_len == n && (n == 0 || memcmp(k->value, s, n) == 0);
}

static int k_begin(llhttp_t *p)
{
    fz_check *k = p->data;
    k->begun++;
    cur_resp(k);
    k->seen = 0;
    k->status = 0;
    k->field_len = k->value_len = k->body_pos = 0;
    k->field_long = false;
    k->value = NULL;
    return 0;
}

/* The reason phrase: "HTTP/1.1 NNN " is before it. */
static int k_status(llhttp_t *p, const char *at, size_t n)
{
    fz_check *k = p->data;
    const fz_resp *r = cur_resp(k);
    FZ_CHECK(p->status_code == r->status || (r->alt && p->status_code == r->alt));
    k->status = p->status_code;
    const char *rs = reason_of(k->status);
    FZ_CHECK(n == strlen(rs) && memcmp(at, rs, n) == 0);
    FZ_CHECK(at - k->out >= 13 && memcmp(at - 13, "HTTP/1.1 ", 9) == 0);
    k->start[k->begun - 1] = (size_t)(at - 13 - k->out);
    return 0;
}

static int k_field(llhttp_t *p, const char *at, size_t n)
{
    fz_check *k = p->data;
    for (size_t i = 0; i < n; i++) {
        if (k->field_len < sizeof k->field)
            k->field[k->field_len++] = at[i];
        else
            k->field_long = true;
    }
    return 0;
}

static int k_value(llhttp_t *p, const char *at, size_t n)
{
    fz_check *k = p->data;
    FZ_CHECK(k->value == NULL || k->value + k->value_len == at);
    if (!k->value)
        k->value = at;
    k->value_len += n;
    return 0;
}

/* One complete header line. */
static int k_value_done(llhttp_t *p)
{
    fz_check *k = p->data;
    const fz_model *m = k->m;
    const fz_resp *r = cur_resp(k);
    FZ_CHECK(r->route != R_CONTINUE && !k->field_long);
    bool mine = r->route != R_ERROR; /* the handler's answer, not the library's */
    unsigned h;
#define IS(lit) (k->field_len == sizeof(lit) - 1 && memcmp(k->field, lit, sizeof(lit) - 1) == 0)
    if (IS("Server")) {
        h = H_SERVER;
        FZ_CHECK(value_is(k, "may", 3));
    } else if (IS("Date")) {
        h = H_DATE;
        FZ_CHECK(date_ok(k->value, k->value_len));
        /* the clock may tick between runs: compare outputs without it */
        memcpy((char *)k->value, fixed_date, FZ_DATE_LEN);
    } else if (IS("Content-Type")) {
        h = H_TYPE;
        const char *t = route_type(r->route);
        FZ_CHECK(value_is(k, t, strlen(t)));
    } else if (IS("Content-Length")) {
        h = H_LENGTH;
        char want[24], tmp[64];
        size_t blen;
        route_body(m, r, k->status, &blen, tmp);
        int wn = snprintf(want, sizeof want, "%zu", blen);
        FZ_CHECK(value_is(k, want, (size_t)wn));
    } else if (IS("Connection")) {
        h = H_CONN;
        FZ_CHECK(r->close ? value_is(k, "close", 5) : r->keep10 && value_is(k, "keep-alive", 10));
    } else if (IS("X-Path") && mine) {
        h = H_PATH;
        char *e = fz_escape(m->pool + r->path, r->path_len);
        FZ_CHECK(value_is(k, e, strlen(e)));
        free(e);
    } else if (IS("X-Query") && mine) {
        h = H_QUERY;
        char *e = fz_escape(m->pool + r->query, r->query_len);
        FZ_CHECK(value_is(k, e, strlen(e)));
        free(e);
    } else {
        FZ_CHECK(!"unexpected response header");
        h = 0;
    }
#undef IS
    FZ_CHECK(!(k->seen & h)); /* each once */
    k->seen |= h;
    k->field_len = k->value_len = 0;
    k->field_long = false;
    k->value = NULL;
    return 0;
}

static int k_headers_done(llhttp_t *p)
{
    fz_check *k = p->data;
    const fz_resp *r = cur_resp(k);
    FZ_CHECK(p->http_major == 1 && p->http_minor == 1);
    FZ_CHECK(p->status_code == k->status);
    if (r->route == R_CONTINUE) {
        FZ_CHECK(k->seen == 0); /* "HTTP/1.1 100 Continue\r\n\r\n" exactly */
        FZ_CHECK(memcmp(k->out + k->start[k->begun - 1], continue_line,
                        sizeof continue_line - 1) == 0);
        return 0;
    }
    unsigned want = H_SERVER | H_DATE | H_TYPE | H_LENGTH;
    if (r->close || r->keep10)
        want |= H_CONN;
    if (r->route != R_ERROR)
        want |= H_PATH | H_QUERY;
    FZ_CHECK(k->seen == want);
    return r->head ? 1 : 0; /* 1: the answer to HEAD has no body */
}

static int k_body(llhttp_t *p, const char *at, size_t n)
{
    fz_check *k = p->data;
    const fz_resp *r = cur_resp(k);
    char tmp[64];
    size_t blen;
    const char *b = route_body(k->m, r, k->status, &blen, tmp);
    FZ_CHECK(!r->head && k->body_pos + n <= blen && memcmp(b + k->body_pos, at, n) == 0);
    k->body_pos += n;
    return 0;
}

static int k_complete(llhttp_t *p)
{
    fz_check *k = p->data;
    const fz_resp *r = cur_resp(k);
    char tmp[64];
    size_t blen = 0;
    if (!r->head && r->route != R_CONTINUE)
        route_body(k->m, r, k->status, &blen, tmp);
    FZ_CHECK(k->body_pos == blen);
    k->done++;
    /* after the last one: stop, so that anything after it is seen */
    return k->done == k->m->n ? HPE_PAUSED : 0;
}

static const llhttp_settings_t check_settings = {
    .on_message_begin = k_begin,
    .on_status = k_status,
    .on_header_field = k_field,
    .on_header_value = k_value,
    .on_header_value_complete = k_value_done,
    .on_headers_complete = k_headers_done,
    .on_body = k_body,
    .on_message_complete = k_complete,
};

/* The server's output must be the model's responses, all of them (or,
 * `partial`, a prefix ending between two writes).  Date values are
 * replaced by a fixed one.  start[i] gets response i's offset. */
static void check_output(const fz_model *m, const fz_conn *f, bool partial, size_t *start)
{
    fz_check k = { .m = m, .out = f->out, .out_len = f->out_len, .start = start };
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &check_settings);
    p.data = &k;
    llhttp_errno_t e = f->out_len ? llhttp_execute(&p, f->out, f->out_len) : HPE_OK;
    if (m->n > 0 && k.done == m->n) /* paused after the last: nothing follows */
        FZ_CHECK(e == HPE_PAUSED && llhttp_get_error_pos(&p) == f->out + f->out_len);
    else
        FZ_CHECK(e == HPE_OK && (partial || m->n == 0));
    if (!partial)
        FZ_CHECK(k.done == m->n);
}

/* Two writes between reads (see the essay).  The server flushes before a
 * head that does not fit (it asks for room for the head plus less than
 * FZ_HEAD_SLACK bytes), before a body that does not fit, after a 100
 * Continue, and before answering an Upgrade request. */
static void check_writes(const fz_model *m, const fz_conn *f, const size_t *start, int nresp)
{
    size_t off = 0;
    for (int i = 0; i < f->nw; i++) {
        if (i + 1 < f->nw && f->w[i + 1].batch == f->w[i].batch) {
            size_t b = off + f->w[i].len; /* where the second one begins */
            bool ok = f->w[i].len + f->w[i + 1].len > FZ_WBUF; /* a body */
            for (int r = 0; r < nresp && !ok; r++) {
                if (m->resp[r].route == R_CONTINUE && start[r] + sizeof continue_line - 1 == b)
                    ok = true;
                if (start[r] != b)
                    continue;
                if (m->resp[r].upgrade)
                    ok = true;
                const char *h = memmem(f->out + b, f->out_len - b, "\r\n\r\n", 4);
                if (h && f->w[i].len + (size_t)(h + 4 - (f->out + b)) + FZ_HEAD_SLACK > FZ_WBUF)
                    ok = true; /* a head */
            }
            FZ_CHECK(ok);
        }
        off += f->w[i].len;
    }
}

/* memcmp's pointers may not be NULL, even for 0 bytes */
static bool same_bytes(const char *a, const char *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}


/* ---- The target ----------------------------------------------------------- */

static uint64_t final_responses(const fz_model *m)
{
    uint64_t n = 0;
    for (int i = 0; i < m->n; i++)
        n += m->resp[i].route != R_CONTINUE;
    return n;
}

/* Where the bytes that must be the same in every run end: the whole
 * output, or the start of a last response that may differ (model_alt). */
static size_t fixed_len(const fz_model *m, const fz_conn *f, const size_t *start)
{
    if (m->n > 0 && m->resp[m->n - 1].alt && f->out_len > start[m->n - 1])
        return start[m->n - 1];
    return f->out_len;
}

/* Runs a and b answered alike (check_output passed on both). */
static void check_same(const fz_model *m, const fz_conn *a, const size_t *sa, const fz_conn *b,
                       const size_t *sb)
{
    size_t na = fixed_len(m, a, sa), nb = fixed_len(m, b, sb);
    FZ_CHECK(na == nb && same_bytes(a->out, b->out, na));
}

/* One input's four runs (see the essay), served by a coroutine; the
 * checks are made after it, on the caller's thread (they may take a while:
 * a coroutine that long on its worker would be reported as stuck). */
typedef struct fz_job {
    const uint8_t *data;
    size_t size;
    uint64_t h;      /* the input's hash: cut points, the end, the failing write */
    int end_err;     /* runs 3 and 4 end with this */
    fz_conn run[4];
    bool ran[4];
} fz_job;

static void *fz_runs(void *arg)
{
    fz_job *j = arg;
    fz_serve(&j->run[0], j->data, j->size, CUT_WHOLE, j->h, 0, 0);
    j->ran[0] = true;
    if (j->size <= FZ_BYTES_MAX) {
        fz_serve(&j->run[1], j->data, j->size, CUT_BYTES, j->h, 0, 0);
        j->ran[1] = true;
    }
    fz_serve(&j->run[2], j->data, j->size, CUT_HASH, j->h, j->end_err, 0);
    j->ran[2] = true;
    if (j->run[2].nw > 0) { /* the k-th of run 3's writes fails */
        int k = 1 + (int)((j->h >> 32) % (uint64_t)j->run[2].nw);
        fz_serve(&j->run[3], j->data, j->size, CUT_HASH, j->h, j->end_err, k);
        j->ran[3] = true;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_model m = { 0 };
    model_run(&m, data, size, SIZE_MAX);
    model_alt(&m, data, size);

    fz_job *j = calloc(1, sizeof *j);
    FZ_CHECK(j != NULL);
    j->data = data;
    j->size = size;
    j->h = fz_hash(data, size);
    uint64_t e = (j->h >> 59) % 3;
    j->end_err = e == 0 ? 0 : e == 1 ? -ECONNRESET : -ETIMEDOUT;
    may_co_t *co;
    FZ_CHECK(may_spawn(&co, fz_runs, j, &(may_spawn_opts_t){ .name = "fuzz_http" }) == 0);
    int r = may_join(co, NULL, may_deadline_in(2 * FZ_HANG_NS));
    if (r == -ETIMEDOUT) { /* (fz_serve's wait did not end either) */
        fprintf(stderr, "fuzz_http: the runs did not end in %lld s\n",
                2 * FZ_HANG_NS / 1000000000LL);
        may_dump(stderr);
    }
    FZ_CHECK(r == MAY_DONE);
    fz_conn *whole = &j->run[0];
    if (fz_verbose) { /* FUZZ_VERBOSE=1: what the server wrote, and the model */
        fprintf(stderr, "fuzz_http: %zu bytes in, %d responses predicted, %d writes:\n", size, m.n,
                whole->nw);
        if (whole->out_len)
            fwrite(whole->out, 1, whole->out_len, stderr);
        fputc('\n', stderr);
    }
    /* response offsets in the output: of run 1, of the others */
    size_t *sw = calloc((size_t)m.n + 2, sizeof *sw), *sc = calloc((size_t)m.n + 2, sizeof *sc);
    FZ_CHECK(sw != NULL && sc != NULL);

    /* 1: whole reads, EOF.  A lingering close exactly when the server
     * chose to close; a plain one at EOF otherwise. */
    check_output(&m, whole, false, sw);
    check_writes(&m, whole, sw, m.n);
    FZ_CHECK(whole->shut == m.closing && whole->got_end == !m.closing);
    FZ_CHECK(whole->requests == final_responses(&m)); /* requests answered */

    /* 2: a byte per read */
    if (j->ran[1]) {
        fz_conn *f = &j->run[1];
        check_output(&m, f, false, sc);
        check_writes(&m, f, sc, m.n);
        check_same(&m, whole, sw, f, sc);
        FZ_CHECK(f->shut == m.closing);
    }

    /* 3: cut at random, ending in EOF, a reset or a timeout: a timeout
     * with part of a request read is answered 408 (and closes) */
    bool late = j->end_err == -ETIMEDOUT && m.in_msg && !m.closing;
    if (late)
        model_error(&m, 408);
    fz_conn *f = &j->run[2];
    check_output(&m, f, false, sc);
    check_writes(&m, f, sc, m.n);
    if (late) /* run 1's answers, then the 408 */
        FZ_CHECK(f->out_len > whole->out_len && same_bytes(f->out, whole->out, whole->out_len));
    else
        check_same(&m, whole, sw, f, sc);
    FZ_CHECK(f->shut == m.closing);
    FZ_CHECK(f->requests == final_responses(&m));

    /* 4: as 3 with a failing write: nothing after it, no shutdown, and
     * what went before it is what run 1 wrote */
    if (j->ran[3]) {
        f = &j->run[3];
        FZ_CHECK(f->write_failed && f->nw == f->fail_write && !f->shut);
        check_output(&m, f, true, sc);
        size_t common = f->out_len < whole->out_len ? f->out_len : whole->out_len;
        if (!late && m.n > 0 && m.resp[m.n - 1].alt && common > sw[m.n - 1])
            common = sw[m.n - 1];
        FZ_CHECK(same_bytes(f->out, whole->out, common));
    }

    for (int i = 0; i < 4; i++)
        fz_free(&j->run[i]);
    free(j);
    free(sw);
    free(sc);
    free(m.resp);
    free(m.pool);
    return 0;
}
