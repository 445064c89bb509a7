/* The HTTP example (examples/http.c, on libmay_http) in-process: curl
 * requests (headers, bodies, keep-alive reuse, 404), 16 pipelined requests
 * over one may_tcp connection answered by one write, requests split over
 * writes, Connection: close, HTTP/1.0, and malformed requests (400 then
 * close).  tests/http/ has the library's own tests. */
#define HTTP_NO_MAIN
#include "../examples/http.c"
#include <llhttp.h>
#include "test.h"

#include <strings.h>
#include <sys/wait.h>

static int port;
static may_http_server_t *srv;

/* ---- curl --------------------------------------------------------------- */

/* Run a curl command line (each "%d" is the port, at most two), return its
 * stdout. */
static char *curl(const char *fmt)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, fmt, port, port);
    FILE *f = popen(cmd, "r");
    ASSERT(f != NULL);
    size_t cap = 8192, len = 0;
    char *out = malloc(cap);
    ASSERT(out != NULL);
    size_t n;
    while ((n = fread(out + len, 1, cap - 1 - len, f)) > 0) {
        len += n;
        ASSERT_LT(len, cap - 1);
    }
    out[len] = 0;
    int st = pclose(f);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "command failed (status %d): %s\noutput: %s\n", st, cmd, out);
        abort();
    }
    return out;
}

static void expect_contains(const char *s, const char *what)
{
    if (!strstr(s, what)) {
        fprintf(stderr, "expected \"%s\" in:\n%s\n", what, s);
        abort();
    }
}

static void expect_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    if (n < m || strcmp(s + n - m, suffix) != 0) {
        fprintf(stderr, "expected to end with \"%s\":\n%s\n", suffix, s);
        abort();
    }
}

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" */
static void expect_date(const char *s)
{
    const char *d = strstr(s, "\r\nDate: ");
    ASSERT(d != NULL);
    d += 8;
    ASSERT(d[3] == ',' && d[4] == ' ');
    ASSERT(memcmp(d + 29 - 4, " GMT\r\n", 6) == 0);
}

#define CURL "curl -s --max-time 10 "

static void test_curl(void)
{
    char *r = curl(CURL "-i http://127.0.0.1:%d/plaintext");
    ASSERT(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    expect_contains(r, "\r\nContent-Type: text/plain\r\n");
    expect_contains(r, "\r\nContent-Length: 13\r\n");
    expect_contains(r, "\r\nServer: may\r\n");
    expect_date(r);
    expect_suffix(r, "\r\n\r\nHello, World!");
    ASSERT(strstr(r, "Connection: close") == NULL);
    free(r);

    r = curl(CURL "-i http://127.0.0.1:%d/json");
    ASSERT(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    expect_contains(r, "\r\nContent-Type: application/json\r\n");
    expect_contains(r, "\r\nContent-Length: 27\r\n");
    expect_date(r);
    expect_suffix(r, "\r\n\r\n{\"message\":\"Hello, World!\"}");
    free(r);

    /* the query string is ignored */
    r = curl(CURL "http://127.0.0.1:%d/plaintext?x=1");
    ASSERT(strcmp(r, "Hello, World!") == 0);
    free(r);

    r = curl(CURL "-o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/nope");
    ASSERT(strcmp(r, "404") == 0);
    free(r);
    r = curl(CURL "-o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/plaintextx");
    ASSERT(strcmp(r, "404") == 0);
    free(r);

    /* keep-alive: curl reuses the connection for the second URL */
    r = curl(CURL "-w ' connects=%%{num_connects}\\n' http://127.0.0.1:%d/plaintext "
                  "http://127.0.0.1:%d/json");
    if (strcmp(r, "Hello, World! connects=1\n"
                  "{\"message\":\"Hello, World!\"} connects=0\n") != 0) {
        fprintf(stderr, "keep-alive: unexpected curl output:\n%s\n", r);
        abort();
    }
    free(r);

    /* Connection: close is honoured and announced */
    r = curl(CURL "-i -H 'Connection: close' http://127.0.0.1:%d/plaintext");
    expect_contains(r, "\r\nConnection: close\r\n");
    expect_suffix(r, "\r\n\r\nHello, World!");
    free(r);

    /* HEAD: headers only */
    r = curl(CURL "-I http://127.0.0.1:%d/json");
    ASSERT(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    expect_contains(r, "\r\nContent-Length: 27\r\n");
    expect_suffix(r, "\r\n\r\n");
    free(r);
}

/* ---- raw connections, responses checked with llhttp -------------------- */

typedef struct client {
    int fd;
    llhttp_t parser;
    int responses;         /* complete responses */
    int status[64];
    char body[64][64];
    size_t body_len[64];
    bool conn_close[64];   /* "Connection: close" header seen */
    bool hdr_is_conn;      /* the header field being parsed is Connection */
    bool eof;
} client_t;

static int c_on_header_field(llhttp_t *p, const char *at, size_t n)
{
    client_t *c = p->data;
    c->hdr_is_conn = n == 10 && strncasecmp(at, "Connection", 10) == 0;
    return 0;
}

static int c_on_header_value(llhttp_t *p, const char *at, size_t n)
{
    client_t *c = p->data;
    if (c->hdr_is_conn && n == 5 && strncasecmp(at, "close", 5) == 0)
        c->conn_close[c->responses] = true;
    return 0;
}

static int c_on_body(llhttp_t *p, const char *at, size_t n)
{
    client_t *c = p->data;
    size_t *len = &c->body_len[c->responses];
    ASSERT_LE(*len + n, sizeof c->body[0]);
    memcpy(c->body[c->responses] + *len, at, n);
    *len += n;
    return 0;
}

static int c_on_message_complete(llhttp_t *p)
{
    client_t *c = p->data;
    c->status[c->responses] = (int)p->status_code;
    c->responses++;
    ASSERT_LT(c->responses, 64);
    return 0;
}

static const llhttp_settings_t client_settings = {
    .on_header_field = c_on_header_field,
    .on_header_value = c_on_header_value,
    .on_body = c_on_body,
    .on_message_complete = c_on_message_complete,
};

static void client_open(client_t *c)
{
    memset(c, 0, sizeof *c);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    c->fd = may_tcp_connect(addr, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(c->fd, 0);
    llhttp_init(&c->parser, HTTP_RESPONSE, &client_settings);
    c->parser.data = c;
}

static void client_send(client_t *c, const char *s)
{
    ssize_t n = (ssize_t)strlen(s);
    ASSERT_EQ(may_tcp_write_all(c->fd, s, (size_t)n, may_deadline_in(TEST_MS(3000))), n);
}

/* Read until `want` responses in total have arrived (or EOF when want < 0).
 * Returns the number of reads it took. */
static int client_read(client_t *c, int want)
{
    int reads = 0;
    int64_t end = may_deadline_in(TEST_MS(5000));
    char buf[8192];
    while (want < 0 ? !c->eof : c->responses < want) {
        ssize_t n = may_tcp_read(c->fd, buf, sizeof buf, end);
        ASSERT_GE(n, 0);
        reads++;
        if (n == 0) {
            ASSERT_EQ(llhttp_finish(&c->parser), HPE_OK); /* no response cut short */
            c->eof = true;
        } else {
            ASSERT_EQ(llhttp_execute(&c->parser, buf, (size_t)n), HPE_OK);
        }
        ASSERT(!c->eof || want < 0);
    }
    return reads;
}

static void client_close(client_t *c)
{
    ASSERT_EQ(may_tcp_close(c->fd), 0);
}

static void expect_body(const client_t *c, int i, int status, const char *body)
{
    ASSERT_EQ(c->status[i], status);
    ASSERT_EQ(c->body_len[i], strlen(body));
    ASSERT(memcmp(c->body[i], body, c->body_len[i]) == 0);
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n\r\n"

/* 16 requests in one write: 16 responses, in order, and (when the server
 * got them with one read, as it does over loopback) in one write. */
static void test_pipeline(void)
{
    enum { DEPTH = 16 };
    char req[DEPTH * 80] = "";
    for (int i = 0; i < DEPTH; i++)
        strcat(req, i % 4 == 3 ? GET("/json") : GET("/plaintext"));
    client_t c;
    client_open(&c);
    for (int round = 0; round < 3; round++) { /* and again on the same connection */
        may_http_stats_t st0, st1;
        may_http_stats(srv, &st0);
        long r0 = (long)st0.reads, w0 = (long)st0.writes;
        client_send(&c, req);
        int reads = client_read(&c, (round + 1) * DEPTH);
        for (int i = round * DEPTH; i < (round + 1) * DEPTH; i++) {
            if (i % 4 == 3)
                expect_body(&c, i, 200, "{\"message\":\"Hello, World!\"}");
            else
                expect_body(&c, i, 200, "Hello, World!");
            ASSERT(!c.conn_close[i]);
        }
        may_http_stats(srv, &st1);
        long dr = (long)st1.reads - r0, dw = (long)st1.writes - w0;
        /* each server read answers with at most one write */
        ASSERT_GE(dr, 1);
        ASSERT_LE(dw, dr);
        if (dr == 1)
            ASSERT_EQ(dw, 1);
        if (round == 0)
            printf("pipeline: %d requests, server reads %ld writes %ld, client reads %d\n",
                   DEPTH, dr, dw, reads);
    }
    client_close(&c);
}

/* Idle keep-alive connections hold no buffers (examples/http.c gives its
 * 32 KiB back after a short read and waits with may_fd_wait), and serve
 * their next request as before. */
static void test_idle_buffers(void)
{
    enum { N = 20 };
    client_t *c = calloc(N, sizeof *c); /* too big for a coroutine stack */
    ASSERT(c != NULL);
    for (int i = 0; i < N; i++) {
        client_open(&c[i]);
        client_send(&c[i], GET("/plaintext"));
    }
    for (int i = 0; i < N; i++) {
        client_read(&c[i], 1);
        expect_body(&c[i], 0, 200, "Hello, World!");
    }
    int64_t end = may_deadline_in(TEST_MS(2000));
    may_http_stats_t st;
    while ((may_http_stats(srv, &st), st.active) > 0 && may_now() < end)
        may_sleep(TEST_MS(1));
    ASSERT_EQ(st.active, 0); /* N open, idle connections */
    for (int i = 0; i < N; i++)
        client_send(&c[i], GET("/json"));
    for (int i = 0; i < N; i++) {
        client_read(&c[i], 2);
        expect_body(&c[i], 1, 200, "{\"message\":\"Hello, World!\"}");
        client_close(&c[i]);
    }
    free(c);
}

/* A request trickling in over several writes (the parser keeps its state). */
static void test_split(void)
{
    client_t c;
    client_open(&c);
    const char *req = GET("/plaintext") GET("/json");
    size_t n = strlen(req);
    size_t cuts[] = { 0, 3, 9, 25, 40, 55, 60, n };
    for (size_t i = 0; i + 1 < sizeof cuts / sizeof cuts[0]; i++) {
        ASSERT_EQ(may_tcp_write_all(c.fd, req + cuts[i], cuts[i + 1] - cuts[i],
                                    MAY_FOREVER), (ssize_t)(cuts[i + 1] - cuts[i]));
        may_sleep(TEST_MS(5));
    }
    client_read(&c, 2);
    expect_body(&c, 0, 200, "Hello, World!");
    expect_body(&c, 1, 200, "{\"message\":\"Hello, World!\"}");
    client_close(&c);
}

/* Connection: close ends the connection after that response; pipelined
 * requests after it are not answered. */
static void test_close(void)
{
    client_t c;
    client_open(&c);
    client_send(&c, GET("/plaintext")
                    "GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    GET("/plaintext"));
    client_read(&c, -1);
    ASSERT_EQ(c.responses, 2);
    expect_body(&c, 0, 200, "Hello, World!");
    ASSERT(!c.conn_close[0]);
    expect_body(&c, 1, 200, "{\"message\":\"Hello, World!\"}");
    ASSERT(c.conn_close[1]);
    client_close(&c);

    /* HTTP/1.0: close unless keep-alive is asked for */
    client_open(&c);
    client_send(&c, "GET /plaintext HTTP/1.0\r\n\r\n");
    client_read(&c, -1);
    ASSERT_EQ(c.responses, 1);
    expect_body(&c, 0, 200, "Hello, World!");
    client_close(&c);

    client_open(&c);
    client_send(&c, "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    client_read(&c, 1);
    client_send(&c, GET("/json"));
    client_read(&c, 2);
    expect_body(&c, 1, 200, "{\"message\":\"Hello, World!\"}");
    client_close(&c);
}

/* Malformed requests: 400, Connection: close, then EOF; responses to the
 * good requests before the bad one still come first. */
static void test_bad(void)
{
    static const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /plaintext FTP/1.1\r\n\r\n",
        "GET /plaintext HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        "GET /plaintext HTTP/1.1\r\nBad Header\r\n\r\n",
        "\x01\x02\x03\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        client_t c;
        client_open(&c);
        client_send(&c, bad[i]);
        client_read(&c, -1);
        ASSERT_EQ(c.responses, 1);
        expect_body(&c, 0, 400, "Bad Request\n");
        ASSERT(c.conn_close[0]);
        client_close(&c);
    }
    /* a request head over head_max (llhttp itself has no limit): 431 */
    size_t big = 65536 + 4096;
    char *huge = malloc(big + 64);
    ASSERT(huge != NULL);
    int k = snprintf(huge, 64, "GET /plaintext HTTP/1.1\r\nX-Big: ");
    memset(huge + k, 'a', big);
    strcpy(huge + k + big, "\r\n\r\n");
    client_t c;
    client_open(&c);
    client_send(&c, huge);
    client_read(&c, -1);
    ASSERT_EQ(c.responses, 1);
    expect_body(&c, 0, 431, "Request Header Fields Too Large\n");
    ASSERT(c.conn_close[0]);
    client_close(&c);
    free(huge);

    client_open(&c);
    client_send(&c, GET("/plaintext") GET("/nope") "NOT HTTP AT ALL\r\n\r\n" GET("/json"));
    client_read(&c, -1);
    ASSERT_EQ(c.responses, 3);
    expect_body(&c, 0, 200, "Hello, World!");
    expect_body(&c, 1, 404, "Not Found\n");
    expect_body(&c, 2, 400, "Bad Request\n");
    ASSERT(c.conn_close[2]);
    client_close(&c);
}

static void *raw_tests(void *arg)
{
    (void)arg;
    test_pipeline();
    test_idle_buffers();
    test_split();
    test_close();
    test_bad();
    return NULL;
}

int main(void)
{
    int lfd = may_tcp_listen("127.0.0.1:0", 128, 0);
    ASSERT_GE(lfd, 0);
    port = may_tcp_local_port(lfd);
    ASSERT_GT(port, 0);
    ASSERT_EQ(http_start(&srv, lfd), 0);

    test_curl();            /* from this plain thread: popen blocks it */
    may_co_t *co;           /* the raw clients in a coroutine */
    ASSERT_EQ(may_spawn(&co, raw_tests, NULL, NULL), 0);
    ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);
    raw_tests(NULL);        /* and from a plain thread */

    ASSERT_EQ(may_http_stop(srv, may_deadline_in(TEST_MS(5000))), 0);
    ASSERT_EQ(may_tcp_close(lfd), 0);
    /* the connection coroutines end once their clients closed */
    int64_t end = may_deadline_in(TEST_MS(5000));
    may_stats_t st;
    do {
        may_stats(&st);
        if (st.alive == 0)
            break;
        may_sleep(TEST_MS(1));
    } while (may_now() < end);
    ASSERT_EQ(st.alive, 0);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
