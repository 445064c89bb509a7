/* fuzz_http.c - fuzz the request path of examples/http.c.
 *
 * The input is the byte stream a client sends on one connection.  This file
 * includes examples/http.c with its transport hooks (HTTP_IO_*) and socket
 * hooks (HTTP_SOCK_*) pointed at an in-memory connection, and runs the
 * server's own connection handler, http_conn, on it: the same parser
 * callbacks, response generation, pipelining, flushing and closing code as
 * the real server, with no socket and no runtime (http_conn is called on the
 * fuzzer's thread; nothing in it blocks on memory).  Each input runs several
 * times with different read boundaries:
 *
 *   1. reads of up to 16 KiB (the server's buffer) then EOF;
 *   2. one byte per read (inputs up to 4 KiB);
 *   3. reads cut at pseudo-random points derived from a hash of the input
 *      (so an input always replays the same way), ending in EOF or in a
 *      read error (-ECONNRESET);
 *   4. as 3, with the k-th write failing (-EPIPE).
 *
 * Invariants checked (abort() on a violation, so libFuzzer reports it):
 * - Runs 1-3 write the same bytes: the answer does not depend on how the
 *   stream was cut into reads.
 * - That output is what a model predicts from parsing the whole input once
 *   with a separate llhttp parser: one response per complete request, in
 *   order (a 400 for an Upgrade or CONNECT request), up to and including the
 *   first request that closes the connection (no keep-alive, or an
 *   upgrade); then, if the parser failed before such a request, one 400.  Each response is checked with an HTTP_RESPONSE
 *   parser: HTTP/1.1, the status and body of the request's route (/plaintext,
 *   /json, else 404), Content-Length equal to the body (no body for HEAD),
 *   Server and a well-formed Date header, "Connection: close" exactly on the
 *   last response of a closing connection; nothing after the last response.
 * - The server never writes more than it may: each write is at most the
 *   16 KiB buffer; within one read's batch every write but the last is a
 *   full buffer (one write per read otherwise); nothing is written after a
 *   failed write, after the shutdown or after the close; no read after the
 *   close.
 * - The connection closes exactly once, and the handler returns: with a
 *   lingering close (shutdown, drain, close) when the server decided to
 *   close (Connection: close, HTTP/1.0, a parse error), a plain close at EOF,
 *   after a read error or after a failed write (no shutdown then).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

struct http_conn;
typedef struct fz_conn fz_conn;
static fz_conn *fz_cur; /* the connection http_conn is about to serve */
static ssize_t fz_read(fz_conn *f, void *buf, size_t n, int64_t deadline);
static ssize_t fz_write(fz_conn *f, const void *buf, size_t n, int64_t deadline);
static ssize_t fz_linger_read(fz_conn *f, void *buf, size_t n, int64_t deadline);
static int fz_shutdown(fz_conn *f, int how);
static void fz_tls_shutdown(fz_conn *f);
static int fz_close(fz_conn *f);
static void fz_end(fz_conn *f);

#define HTTP_NO_MAIN
#define HTTP_IO_READ(c, buf, n, dl) fz_read((fz_conn *)(c)->io, buf, n, dl)
#define HTTP_IO_WRITE_ALL(c, buf, n, dl) fz_write((fz_conn *)(c)->io, buf, n, dl)
#define HTTP_IO_BEGIN(c) ((c)->io = fz_cur, 0)
#define HTTP_IO_SHUTDOWN(c) fz_tls_shutdown((fz_conn *)(c)->io)
#define HTTP_IO_END(c) fz_end((fz_conn *)(c)->io)
#define HTTP_SOCK_READ(c, buf, n, dl) fz_linger_read((fz_conn *)(c)->io, buf, n, dl)
#define HTTP_SOCK_SHUTDOWN(c, how) fz_shutdown((fz_conn *)(c)->io, how)
#define HTTP_SOCK_CLOSE(c) fz_close((fz_conn *)(c)->io)
#include "../examples/http.c"

#define FZ_CHECK(cond)                                                          \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "fuzz_http: %s:%d: invariant failed: %s\n", __FILE__, \
                    __LINE__, #cond);                                           \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* ---- The in-memory connection ------------------------------------------- */

enum { CUT_WHOLE, CUT_BYTES, CUT_HASH };

struct fz_conn {
    const uint8_t *in;
    size_t in_len, in_pos;
    int cut;             /* CUT_* */
    uint64_t rng;        /* CUT_HASH: cut points, from the input's hash */
    int end_err;         /* the last read: 0 (EOF) or -ECONNRESET */
    int fail_write;      /* this write (1-based) fails; 0: none does */
    /* what the server did */
    char *out;
    size_t out_len, out_cap;
    int reads, writes;
    bool got_end;        /* a read returned <= 0 */
    bool write_failed, tls_shut, shut, closed, ended;
    bool small_write;    /* this read's batch had a write below a full buffer */
};

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

static ssize_t fz_read(fz_conn *f, void *buf, size_t n, int64_t deadline)
{
    FZ_CHECK(!f->closed && !f->shut && !f->tls_shut && !f->write_failed);
    FZ_CHECK(!f->got_end); /* no read after EOF or an error */
    FZ_CHECK(n > 0 && deadline > 0);
    f->small_write = false; /* a new batch */
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
    f->reads++;
    return (ssize_t)k;
}

static ssize_t fz_write(fz_conn *f, const void *buf, size_t n, int64_t deadline)
{
    FZ_CHECK(!f->closed && !f->shut && !f->tls_shut && !f->write_failed);
    FZ_CHECK(n > 0 && n <= HTTP_WBUF && deadline > 0);
    /* a second write in one batch: the first must have been a full buffer */
    FZ_CHECK(!f->small_write);
    if (n < HTTP_WBUF - HTTP_RESP_MAX)
        f->small_write = true;
    f->writes++;
    if (f->writes == f->fail_write) {
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
    return (ssize_t)n;
}

static void fz_tls_shutdown(fz_conn *f)
{
    FZ_CHECK(!f->closed && !f->shut && !f->tls_shut && !f->write_failed);
    f->tls_shut = true;
}

static int fz_shutdown(fz_conn *f, int how)
{
    FZ_CHECK(how == SHUT_WR && f->tls_shut);
    FZ_CHECK(!f->closed && !f->shut && !f->write_failed);
    f->shut = true;
    return 0;
}

/* The lingering close drains the rest of the input (then EOF). */
static ssize_t fz_linger_read(fz_conn *f, void *buf, size_t n, int64_t deadline)
{
    FZ_CHECK(f->shut && !f->closed && n > 0 && deadline > 0);
    size_t k = f->in_len - f->in_pos;
    if (k > n)
        k = n;
    memcpy(buf, f->in + f->in_pos, k);
    f->in_pos += k;
    return (ssize_t)k;
}

static int fz_close(fz_conn *f)
{
    FZ_CHECK(!f->closed);
    f->closed = true;
    return 0;
}

static void fz_end(fz_conn *f)
{
    FZ_CHECK(f->closed && !f->ended);
    f->ended = true;
}

static bool same_output(const fz_conn *a, const fz_conn *b)
{
    return a->out_len == b->out_len && (a->out_len == 0 || memcmp(a->out, b->out, a->out_len) == 0);
}

/* Serve one connection whose client sends in[0..n). */
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
    fz_cur = f;
    http_conn((void *)(intptr_t)-1); /* the fd is never used */
    fz_cur = NULL;
    FZ_CHECK(f->closed && f->ended);
}

/* ---- The model: what the server should answer --------------------------- */

enum { R_PLAIN, R_JSON, R_404, R_400 };

typedef struct {
    int route;      /* R_* */
    bool head;      /* answer without a body */
    bool close;     /* Connection: close */
} fz_resp;

typedef struct {
    fz_resp *resp;
    int n, cap;
    bool closing;   /* a request that does not keep alive was seen */
    char url[32];   /* enough to tell the routes apart */
    size_t url_len;
    size_t head_len; /* bytes of the current request head (HTTP_HEAD_MAX) */
    bool url_long;
} fz_model;

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
    m->url_len = m->head_len = 0;
    m->url_long = false;
    return 0;
}

/* The server's limit on a request head: past it, a parse error. */
static int m_head(llhttp_t *p, const char *at, size_t n)
{
    (void)at;
    fz_model *m = p->data;
    m->head_len += n;
    return m->head_len > HTTP_HEAD_MAX ? -1 : 0;
}

static int m_url(llhttp_t *p, const char *at, size_t n)
{
    fz_model *m = p->data;
    if (m_head(p, at, n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (m->url_len < sizeof m->url)
            m->url[m->url_len++] = at[i];
        else
            m->url_long = true;
    }
    return 0;
}

/* "/plaintext" or "/plaintext?anything" (and the same for /json). */
static bool m_path(const fz_model *m, const char *path)
{
    size_t n = strlen(path);
    if (m->url_len < n || memcmp(m->url, path, n) != 0)
        return false;
    return (m->url_len == n && !m->url_long) || m->url[n] == '?';
}

static int m_complete(llhttp_t *p)
{
    fz_model *m = p->data;
    if (m->closing)
        return 0; /* answered nothing after the closing request */
    fz_resp r = {
        .route = m_path(m, "/plaintext") ? R_PLAIN : m_path(m, "/json") ? R_JSON : R_404,
        .head = p->method == HTTP_HEAD,
        .close = !llhttp_should_keep_alive(p),
    };
    if (p->upgrade) /* Upgrade or CONNECT: 400 and close instead */
        r = (fz_resp){ .route = R_400, .close = true };
    m->closing = r.close;
    model_push(m, r);
    return 0;
}

static const llhttp_settings_t model_settings = {
    .on_message_begin = m_begin,
    .on_url = m_url,
    .on_header_field = m_head,
    .on_header_value = m_head,
    .on_message_complete = m_complete,
};

/* Parse the whole input in one call: the expected responses. */
static void model_run(fz_model *m, const uint8_t *in, size_t n)
{
    llhttp_t p;
    llhttp_init(&p, HTTP_REQUEST, &model_settings);
    p.data = m;
    /* not OK: a parse error, or the stop after an upgrade (closing then) */
    bool bad = n > 0 && llhttp_execute(&p, (const char *)in, n) != HPE_OK; /* (NULL, 0): UB */
    if (bad && !m->closing) {
        model_push(m, (fz_resp){ .route = R_400, .close = true });
        m->closing = true;
    }
}

/* ---- Checking the server's output --------------------------------------- */

typedef struct {
    const fz_model *m;
    int begun, done;  /* responses started / complete */
    bool hdr_closing; /* Connection: close seen in this response */
    bool hdr_server, hdr_date, hdr_type;
    char field[32];
    size_t field_len;
    bool field_long;
    char value[64];
    size_t value_len;
    bool in_value;
    char body[64];
    size_t body_len;
} fz_check;

static const char *route_type(int route)
{
    return route == R_JSON ? "application/json" : "text/plain";
}

static const char *route_body(int route)
{
    switch (route) {
    case R_PLAIN:
        return "Hello, World!";
    case R_JSON:
        return "{\"message\":\"Hello, World!\"}";
    case R_404:
        return "Not Found\n";
    default:
        return "Bad Request\n";
    }
}

static unsigned route_status(int route)
{
    return route == R_404 ? 404 : route == R_400 ? 400 : 200;
}

static const fz_resp *cur_resp(fz_check *k)
{
    FZ_CHECK(k->begun >= 1 && k->begun <= k->m->n); /* no response too many */
    return &k->m->resp[k->begun - 1];
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static bool date_ok(const char *s, size_t n)
{
    static const char pat[] = "AAA, 00 AAA 0000 00:00:00 GMT"; /* A: letter, 0: digit */
    if (n != HTTP_DATE_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char p = pat[i], c = s[i];
        if (p == 'A' ? !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
                     : p == '0' ? !(c >= '0' && c <= '9') : c != p)
            return false;
    }
    return true;
}

/* One complete header line (field and value are collected first: the
 * parser may deliver them in pieces). */
static void check_header(fz_check *k)
{
    const fz_resp *r = cur_resp(k);
    FZ_CHECK(!k->field_long);
    const char *v = k->value;
    size_t vn = k->value_len;
#define IS(s, lit) (k->s##_len == sizeof(lit) - 1 && memcmp(k->s, lit, sizeof(lit) - 1) == 0)
    if (IS(field, "Server")) {
        FZ_CHECK(!k->hdr_server && IS(value, "may"));
        k->hdr_server = true;
    } else if (IS(field, "Date")) {
        FZ_CHECK(!k->hdr_date && date_ok(v, vn));
        k->hdr_date = true;
    } else if (IS(field, "Content-Type")) {
        const char *t = route_type(r->route);
        FZ_CHECK(!k->hdr_type && vn == strlen(t) && memcmp(v, t, vn) == 0);
        k->hdr_type = true;
    } else if (IS(field, "Content-Length")) {
        char want[16];
        int wn = snprintf(want, sizeof want, "%zu", strlen(route_body(r->route)));
        FZ_CHECK(vn == (size_t)wn && memcmp(v, want, vn) == 0);
    } else if (IS(field, "Connection")) {
        FZ_CHECK(!k->hdr_closing && IS(value, "close"));
        k->hdr_closing = true;
    } else {
        FZ_CHECK(!"unexpected response header");
    }
#undef IS
    k->field_len = k->value_len = 0;
    k->field_long = k->in_value = false;
}

static int k_begin(llhttp_t *p)
{
    fz_check *k = p->data;
    k->begun++;
    cur_resp(k);
    k->hdr_closing = k->hdr_server = k->hdr_date = k->hdr_type = false;
    k->field_len = k->value_len = k->body_len = 0;
    k->field_long = k->in_value = false;
    return 0;
}

static int k_field(llhttp_t *p, const char *at, size_t n)
{
    fz_check *k = p->data;
    if (k->in_value)
        check_header(k);
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
    k->in_value = true;
    FZ_CHECK(k->value_len + n <= sizeof k->value);
    memcpy(k->value + k->value_len, at, n);
    k->value_len += n;
    return 0;
}

static int k_headers_complete(llhttp_t *p)
{
    fz_check *k = p->data;
    if (k->in_value)
        check_header(k);
    const fz_resp *r = cur_resp(k);
    FZ_CHECK(p->http_major == 1 && p->http_minor == 1);
    FZ_CHECK(p->status_code == route_status(r->route));
    FZ_CHECK(k->hdr_server && k->hdr_date && k->hdr_type);
    FZ_CHECK(p->content_length == strlen(route_body(r->route)));
    FZ_CHECK(k->hdr_closing == r->close);
    return r->head ? 1 : 0; /* 1: a response to HEAD has no body */
}

static int k_body(llhttp_t *p, const char *at, size_t n)
{
    fz_check *k = p->data;
    FZ_CHECK(k->body_len + n <= sizeof k->body);
    memcpy(k->body + k->body_len, at, n);
    k->body_len += n;
    return 0;
}

static int k_complete(llhttp_t *p)
{
    fz_check *k = p->data;
    const fz_resp *r = cur_resp(k);
    const char *b = r->head ? "" : route_body(r->route);
    FZ_CHECK(k->body_len == strlen(b) && memcmp(k->body, b, k->body_len) == 0);
    k->done++;
    return 0;
}

static const llhttp_settings_t check_settings = {
    .on_message_begin = k_begin,
    .on_header_field = k_field,
    .on_header_value = k_value,
    .on_headers_complete = k_headers_complete,
    .on_body = k_body,
    .on_message_complete = k_complete,
};

/* The server's whole output must be exactly the model's responses. */
static void check_output(const fz_model *m, const char *out, size_t n)
{
    FZ_CHECK(n <= (size_t)m->n * HTTP_RESP_MAX);
    fz_check k = { .m = m };
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &check_settings);
    p.data = &k;
    FZ_CHECK(n == 0 || llhttp_execute(&p, out, n) == HPE_OK); /* (NULL, 0): UB */
    FZ_CHECK(k.begun == k.done && k.done == m->n);
}

/* ---- The target --------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    (void)http_start; /* the server's other half is not used here */
    (void)http_stop;
    http_date_update(); /* fixed for the process: outputs compare equal */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_model m = { 0 };
    model_run(&m, data, size);
    /* a lingering close exactly when the server decided to close */
    bool linger = m.closing;

    uint64_t h = fz_hash(data, size);
    fz_conn whole, cut;
    fz_serve(&whole, data, size, CUT_WHOLE, h, 0, 0);
    check_output(&m, whole.out, whole.out_len);
    FZ_CHECK(whole.shut == linger && whole.got_end == !linger);
    if (linger)
        FZ_CHECK(whole.in_pos == size); /* the linger drained the rest */

    if (size <= 4096) {
        fz_serve(&cut, data, size, CUT_BYTES, h, 0, 0);
        FZ_CHECK(same_output(&cut, &whole));
        FZ_CHECK(cut.shut == linger);
        free(cut.out);
    }

    int end_err = (h >> 60) & 1 ? -ECONNRESET : 0;
    fz_serve(&cut, data, size, CUT_HASH, h, end_err, 0);
    FZ_CHECK(same_output(&cut, &whole));
    FZ_CHECK(cut.shut == linger);
    int writes = cut.writes;
    free(cut.out);

    if (writes > 0) { /* a failing write: no more writes, no shutdown */
        int k = 1 + (int)((h >> 32) % (uint64_t)writes);
        fz_serve(&cut, data, size, CUT_HASH, h, end_err, k);
        FZ_CHECK(cut.write_failed && cut.writes == k && !cut.shut && !cut.tls_shut);
        free(cut.out);
    }

    free(whole.out);
    free(m.resp);
    return 0;
}
