/* libmay_http over raw connections: RFC 9112's rules (Host, whitespace
 * before a colon, absolute-form targets, versions, h2c upgrades, CONNECT),
 * HTTP/1.0 keep-alive, Expect: 100-continue, request bodies (Content-Length
 * and chunked), streaming responses, the limits (head, target, body,
 * connections) and timeouts (head, body pace, idle) with their statuses,
 * the graceful stop, and the API's refusals of bad arguments.  Each check
 * would fail without the behaviour it names. */
#include "http_client.h"

#include <stdatomic.h>

/* ---- The handler ---------------------------------------------------------- */

static atomic_int api_failures = 0; /* /api's checks that failed */
static atomic_int slow_done = 0;    /* /slow requests answered */

static void handler(may_http_req_t *req, may_http_res_t *res, void *arg)
{
    (void)arg;
    const char *path = may_http_path(req, NULL);
    char body[512];
    if (strcmp(path, "/hello") == 0) {
        may_http_respond(res, 200, "text/plain", "hi", 2);
    } else if (strcmp(path, "/info") == 0) {
        const char *host = may_http_header(req, "host", NULL);
        int n = snprintf(body, sizeof body, "%s|%s|%s|%d|%s|%zu", may_http_method(req), path,
                         may_http_query(req, NULL), may_http_version(req), host ? host : "-",
                         may_http_nheaders(req));
        may_http_respond(res, 200, "text/plain", body, (size_t)n);
    } else if (strcmp(path, "/echo") == 0) {
        size_t n;
        const void *b = may_http_body(req, &n);
        may_http_respond(res, 200, "application/octet-stream", b, n);
    } else if (strcmp(path, "/stream") == 0) {
        may_http_add_header(res, "Content-Type", "text/plain");
        may_http_write(res, "a", 1);
        may_sleep(TEST_MS(20));
        may_http_write(res, "bb", 2);
        may_http_write(res, "ccc", 3);
        may_http_end(res);
    } else if (strcmp(path, "/slow") == 0) {
        may_sleep(TEST_MS(atoi(may_http_query(req, NULL))));
        may_http_respond(res, 200, "text/plain", "slow", 4);
        atomic_fetch_add(&slow_done, 1);
    } else if (strcmp(path, "/status") == 0) {
        may_http_status(res, 202); /* and no body: the library ends it */
    } else if (strcmp(path, "/api") == 0) {
        int f = 0;
        f += may_http_status(res, 99) != -EINVAL;
        f += may_http_status(res, 1000) != -EINVAL;
        f += may_http_add_header(res, "Content-Length", "5") != -EINVAL;
        f += may_http_add_header(res, "connection", "close") != -EINVAL;
        f += may_http_add_header(res, "X-Bad", "a\r\nInjected: 1") != -EINVAL;
        f += may_http_add_header(res, "X-Bad", "a\fb") != -EINVAL;
        f += may_http_add_header(res, "X-Tab", "a\tb") != 0;
        f += may_http_add_header(res, "Bad Name", "v") != -EINVAL;
        f += may_http_add_header(res, "", "v") != -EINVAL;
        f += may_http_header_at(req, 1000, NULL, NULL) != -ERANGE;
        f += may_http_add_header(res, "X-Good", "yes") != 0;
        f += may_http_respond(res, 200, "text/plain", "api", 3) != 0;
        f += may_http_respond(res, 200, "text/plain", "again", 5) != -EALREADY;
        f += may_http_add_header(res, "X-Late", "1") != -EALREADY;
        f += may_http_status(res, 201) != -EALREADY;
        f += may_http_write(res, "x", 1) != -EALREADY;
        f += may_http_end(res) != -EALREADY;
        atomic_fetch_add(&api_failures, f);
    } else {
        may_http_respond(res, 404, "text/plain", "nf", 2);
    }
}

#define CFG(...)                                                                         \
    (&(may_http_config_t){ .handler = handler, .head_max = 4096, .body_max = 10000,     \
                           .header_timeout_ms = 400, .idle_timeout_ms = 700,             \
                           .body_grace_ms = 300, .body_min_rate = 4000, __VA_ARGS__ })

static int listen_any(void)
{
    int lfd = may_tcp_listen("127.0.0.1:0", 128, 0);
    ASSERT_GE(lfd, 0);
    hc_port = may_tcp_local_port(lfd);
    return lfd;
}

/* ---- RFC 9112 -------------------------------------------------------------- */

static void test_rfc(void)
{
    bool eof;
    char *r;
    /* HTTP/1.1 needs exactly one Host */
    r = hc_exchange("GET /hello HTTP/1.1\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 400 Bad Request\r\n");
    EXPECT_HAS(r, "Connection: close\r\n");
    ASSERT(eof);
    free(r);
    r = hc_exchange("GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 400 ");
    ASSERT(eof);
    free(r);
    /* whitespace between a header's name and its colon */
    r = hc_exchange("GET /hello HTTP/1.1\r\nHost : a\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 400 ");
    free(r);
    r = hc_exchange("GET /hello HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 400 ");
    free(r);
    /* HTTP/1.0 needs no Host */
    r = hc_exchange("GET /info?q=1 HTTP/1.0\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 200 OK\r\n");
    EXPECT_HAS(r, "\r\n\r\nGET|/info|q=1|10|-|0");
    EXPECT_HAS(r, "Connection: close\r\n");
    ASSERT(eof);
    free(r);
    /* absolute-form target: the path and query are split out of it */
    r = hc_exchange("GET http://example.com:8080/info?x=y HTTP/1.1\r\nHost: example.com\r\n"
                    "Connection: close\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 200 OK\r\n");
    EXPECT_HAS(r, "\r\n\r\nGET|/info|x=y|11|example.com|2");
    free(r);
    r = hc_exchange("GET http://example.com HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
                    &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 404 ");
    free(r);
    /* the authority ends at '?' too; a "://" inside a non-absolute target
     * is not a scheme (both found by fuzz_http) */
    r = hc_exchange("GET http://a?x/hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 404 ");
    free(r);
    r = hc_exchange("GET http://a?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 404 ");
    free(r);
    r = hc_exchange("GET HTTP://a/info?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &eof);
    EXPECT_HAS(r, "\r\n\r\nGET|/info|x=1|11|a|2");
    free(r);
    r = hc_exchange("GET *abc://x/hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 404 ");
    free(r);
    /* HTTP/2's preface: 505 */
    r = hc_exchange("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 505 ");
    free(r);
    /* unsupported versions: 505 */
    r = hc_exchange("GET /hello HTTP/2.0\r\nHost: a\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 505 HTTP Version Not Supported\r\n");
    ASSERT(eof);
    free(r);
    r = hc_exchange("GET /hello HTTP/1.2\r\nHost: a\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 505 ");
    free(r);
    /* CONNECT: 400 */
    r = hc_exchange("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 400 ");
    free(r);
    /* an h2c upgrade the server does not do is ignored: answered as a plain
     * request, and the connection goes on (a pipelined request after it) */
    int fd = hc_open();
    hc_send(fd, "GET /hello HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
                "GET /info HTTP/1.1\r\nHost: a\r\n\r\n");
    r = hc_read_for(fd, "GET|/info||11|a|1", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 200 OK\r\n");
    EXPECT_HAS(r, "\r\n\r\nhi");
    EXPECT_NOT(r, "101");
    ASSERT_EQ(hc_count(r, "HTTP/1.1 200 OK"), 2);
    free(r);
    may_tcp_close(fd);
    /* HTTP/1.0 keep-alive: answered with Connection: keep-alive, and the
     * connection stays open for the next request (ab -k relies on it) */
    fd = hc_open();
    hc_send(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    r = hc_read_for(fd, "\r\n\r\nhi", &eof);
    EXPECT_HAS(r, "Connection: keep-alive\r\n");
    EXPECT_HAS(r, "Content-Length: 2\r\n");
    ASSERT(!eof);
    free(r);
    hc_send(fd, "GET /info HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    r = hc_read_for(fd, "GET|/info||10|-|1", &eof);
    EXPECT_HAS(r, "GET|/info||10|-|1");
    free(r);
    may_tcp_close(fd);
    /* a status with no body from the handler */
    r = hc_exchange("GET /status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 202 Accepted\r\n");
    EXPECT_HAS(r, "Content-Length: 0\r\n");
    free(r);
    /* the API's refusals (checked inside the handler) */
    r = hc_exchange("GET /api HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &eof);
    EXPECT_HAS(r, "X-Good: yes\r\n");
    EXPECT_NOT(r, "Injected");
    EXPECT_HAS(r, "\r\n\r\napi");
    ASSERT_EQ(hc_count(r, "HTTP/1.1"), 1);
    ASSERT_EQ(atomic_load(&api_failures), 0);
    free(r);
}

/* ---- Bodies, Expect, streaming --------------------------------------------- */

static void test_bodies(void)
{
    bool eof;
    char *r;
    /* Content-Length body */
    r = hc_exchange("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                    "hello", &eof);
    EXPECT_HAS(r, "Content-Length: 5\r\n");
    EXPECT_HAS(r, "\r\n\r\nhello");
    free(r);
    /* chunked body, joined */
    r = hc_exchange("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                    "Connection: close\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n", &eof);
    EXPECT_HAS(r, "Content-Length: 7\r\n");
    EXPECT_HAS(r, "\r\n\r\nabcdefg");
    free(r);
    /* over body_max: 413, at once when Content-Length says so */
    r = hc_exchange("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10001\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 413 Content Too Large\r\n");
    ASSERT(eof);
    free(r);
    {
        int fd = hc_open();
        hc_send(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
        char chunk[2100];
        memset(chunk, 'x', sizeof chunk);
        int k = snprintf(chunk, 16, "7d0\r\n"); /* 2000 bytes */
        chunk[k] = 'x';
        chunk[k + 2000] = '\r';
        chunk[k + 2001] = '\n';
        chunk[k + 2002] = '\0';
        for (int i = 0; i < 6; i++) /* 12 000 > 10 000 */
            hc_send(fd, chunk);
        r = hc_read_until(fd, may_deadline_in(TEST_MS(2000)), &eof);
        EXPECT_PREFIX(r, "HTTP/1.1 413 ");
        ASSERT(eof);
        free(r);
        may_tcp_close(fd);
    }
    /* Expect: 100-continue: the interim answer comes before the body is
     * sent, then the final one */
    int fd = hc_open();
    hc_send(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    r = hc_read_for(fd, "\r\n\r\n", &eof);
    ASSERT_EQ(strcmp(r, "HTTP/1.1 100 Continue\r\n\r\n"), 0);
    free(r);
    hc_send(fd, "data");
    r = hc_read_for(fd, "\r\n\r\ndata", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 200 OK\r\n");
    free(r);
    may_tcp_close(fd);
    /* ... 413 instead when the body would be too big; other expectations: 417 */
    r = hc_exchange("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 20000\r\n"
                    "Expect: 100-continue\r\n\r\n", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 413 ");
    EXPECT_NOT(r, "100 Continue");
    free(r);
    r = hc_exchange("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: magic\r\n\r\nx",
                    &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 417 Expectation Failed\r\n");
    free(r);
    /* Expect is a list: every line counts (fuzz_http found the last one won) */
    r = hc_exchange("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: magic\r\n"
                    "Expect: 100-continue\r\n\r\nx", &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 417 ");
    EXPECT_NOT(r, "100 Continue");
    free(r);
    /* streaming: chunked on HTTP/1.1 (then the connection goes on) ... */
    fd = hc_open();
    hc_send(fd, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    r = hc_read_for(fd, "0\r\n\r\n", &eof);
    EXPECT_HAS(r, "Transfer-Encoding: chunked\r\n");
    EXPECT_NOT(r, "Content-Length");
    EXPECT_HAS(r, "\r\n\r\n1\r\na\r\n2\r\nbb\r\n3\r\nccc\r\n0\r\n\r\n");
    free(r);
    hc_send(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    r = hc_read_for(fd, "\r\n\r\nhi", &eof);
    EXPECT_HAS(r, "\r\n\r\nhi");
    free(r);
    may_tcp_close(fd);
    /* ... and to the close on HTTP/1.0 */
    r = hc_exchange("GET /stream HTTP/1.0\r\n\r\n", &eof);
    EXPECT_HAS(r, "Connection: close\r\n\r\nabbccc");
    EXPECT_NOT(r, "chunked");
    ASSERT(eof);
    free(r);
    /* HEAD: the length, no body */
    r = hc_exchange("HEAD /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &eof);
    EXPECT_HAS(r, "Content-Length: 2\r\n");
    ASSERT(strcmp(r + strlen(r) - 4, "\r\n\r\n") == 0);
    free(r);
}

/* ---- Limits ----------------------------------------------------------------- */

static char *big_request(size_t target_len, size_t header_len)
{
    char *s = malloc(target_len + header_len + 128);
    ASSERT(s != NULL);
    char *p = s + sprintf(s, "GET /");
    memset(p, 't', target_len);
    p += target_len;
    p += sprintf(p, " HTTP/1.1\r\nHost: a\r\nX-Big: ");
    memset(p, 'h', header_len);
    p += header_len;
    strcpy(p, "\r\n\r\n");
    return s;
}

static void test_limits(void)
{
    bool eof;
    char *req = big_request(10, 5000), *r = hc_exchange(req, &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
    ASSERT(eof);
    free(r);
    free(req);
    req = big_request(5000, 10);
    r = hc_exchange(req, &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 414 URI Too Long\r\n");
    free(r);
    free(req);
    /* a head over three reads whose spilled target fills the arena to its
     * last byte before a header is spilled after it (fuzz_http found the
     * arena's move reading one byte past it: ASan) */
    {
        int fd = hc_open();
        char part[600];
        memset(part, 'a', sizeof part);
        memcpy(part, "GET /", 5);
        part[504] = '\0';
        hc_send(fd, part);
        may_sleep(TEST_MS(30));
        memset(part, 'a', 523);
        strcpy(part + 523, " HTTP/1.1\r\nHost: x\r\nX: y");
        hc_send(fd, part);
        may_sleep(TEST_MS(30));
        hc_send(fd, "\r\nConnection: close\r\n\r\n");
        bool eof2;
        char *r2 = hc_read_until(fd, may_deadline_in(TEST_MS(2000)), &eof2);
        EXPECT_PREFIX(r2, "HTTP/1.1 404 ");
        free(r2);
        may_tcp_close(fd);
    }
    /* just under the limit is fine */
    req = big_request(10, 3900);
    r = hc_exchange(req, &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 404 ");
    free(r);
    free(req);
}

/* ---- Timeouts ------------------------------------------------------------------ */

static void test_timeouts(void)
{
    bool eof;
    /* slowloris: one header line every 100 ms; the head's 400 ms run out */
    int fd = hc_open();
    int64_t t0 = may_now();
    hc_send(fd, "GET /hello HTTP/1.1\r\n");
    char *r = NULL;
    for (int i = 0; i < 30; i++) {
        may_sleep(TEST_MS(100));
        char line[32];
        snprintf(line, sizeof line, "X-Slow-%d: 1\r\n", i);
        if (may_tcp_write_all(fd, line, strlen(line), may_deadline_in(TEST_MS(1000))) < 0)
            break;
        if (may_fd_wait(fd, MAY_READ, MAY_NOWAIT) > 0)
            break;
    }
    r = hc_read_until(fd, may_deadline_in(TEST_MS(3000)), &eof);
    int64_t ms = (may_now() - t0) / 1000000;
    EXPECT_PREFIX(r, "HTTP/1.1 408 Request Timeout\r\n");
    ASSERT(eof);
    ASSERT_LT(ms, 2500);
    printf("slowloris: 408 after %lld ms (header_timeout 400 ms)\n", (long long)ms);
    free(r);
    may_tcp_close(fd);
    /* a new connection that sends nothing: closed, no answer */
    fd = hc_open();
    r = hc_read_until(fd, may_deadline_in(TEST_MS(3000)), &eof);
    ASSERT(eof);
    ASSERT_EQ(strlen(r), 0);
    free(r);
    may_tcp_close(fd);
    /* a body below the minimum pace: 408 */
    fd = hc_open();
    hc_send(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 9000\r\n\r\n");
    for (int i = 0; i < 40; i++) {
        if (may_tcp_write_all(fd, "0123456789", 10, may_deadline_in(TEST_MS(1000))) < 0 ||
            may_fd_wait(fd, MAY_READ, MAY_NOWAIT) > 0)
            break;
        may_sleep(TEST_MS(50));
    }
    r = hc_read_until(fd, may_deadline_in(TEST_MS(3000)), &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 408 ");
    free(r);
    may_tcp_close(fd);
    /* idle keep-alive: a kept-alive connection lives idle_timeout (700 ms),
     * longer than the head's 400 ms, then closes without an answer */
    fd = hc_open();
    hc_send(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    r = hc_read_for(fd, "\r\n\r\nhi", &eof);
    free(r);
    t0 = may_now();
    r = hc_read_until(fd, may_deadline_in(TEST_MS(3000)), &eof);
    ms = (may_now() - t0) / 1000000;
    ASSERT(eof);
    ASSERT_EQ(strlen(r), 0);
    ASSERT_GE(ms, 600);
    ASSERT_LT(ms, 2500);
    free(r);
    may_tcp_close(fd);
    /* a kept-alive connection's next head gets header_timeout from its
     * first byte: idle 500 ms (< 700), then a partial head: 408 */
    fd = hc_open();
    hc_send(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    free(hc_read_for(fd, "\r\n\r\nhi", &eof));
    may_sleep(TEST_MS(500));
    hc_send(fd, "GET /hello HTTP/1.1\r\n");
    r = hc_read_until(fd, may_deadline_in(TEST_MS(3000)), &eof);
    EXPECT_PREFIX(r, "HTTP/1.1 408 ");
    free(r);
    may_tcp_close(fd);
}

/* ---- max_conns: accept pauses at the limit --------------------------------------- */

static void test_max_conns(void)
{
    int lfd = listen_any();
    may_http_server_t *srv;
    ASSERT_EQ(may_http_start(&srv, lfd, CFG(.max_conns = 3)), 0);
    int fds[5];
    for (int i = 0; i < 5; i++) {
        fds[i] = hc_open(); /* the kernel's backlog completes all five */
        hc_send(fds[i], "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    }
    bool eof;
    for (int i = 0; i < 3; i++) {
        char *r = hc_read_for(fds[i], "\r\n\r\nhi", &eof);
        EXPECT_HAS(r, "\r\n\r\nhi");
        free(r);
    }
    char buf[64]; /* the fourth waits in the backlog */
    ASSERT_EQ(may_tcp_read(fds[3], buf, sizeof buf, may_deadline_in(TEST_MS(300))), -ETIMEDOUT);
    may_http_stats_t st;
    may_http_stats(srv, &st);
    ASSERT_EQ(st.conns, 3);
    may_tcp_close(fds[0]); /* room for one */
    char *r = hc_read_for(fds[3], "\r\n\r\nhi", &eof);
    EXPECT_HAS(r, "\r\n\r\nhi");
    free(r);
    ASSERT_EQ(may_tcp_read(fds[4], buf, sizeof buf, may_deadline_in(TEST_MS(200))), -ETIMEDOUT);
    for (int i = 1; i < 5; i++)
        may_tcp_close(fds[i]);
    ASSERT_EQ(may_http_stop(srv, may_deadline_in(TEST_MS(5000))), 0);
    may_tcp_close(lfd);
}

/* ---- Graceful stop ------------------------------------------------------------------ */

static void *slow_client(void *arg)
{
    int fd = (int)(intptr_t)arg;
    bool eof;
    char *r = hc_read_until(fd, may_deadline_in(TEST_MS(5000)), &eof);
    intptr_t ok = strstr(r, "\r\n\r\nslow") != NULL && strstr(r, "Connection: close") && eof;
    free(r);
    may_tcp_close(fd);
    return (void *)ok;
}

static void test_stop(void)
{
    int lfd = listen_any();
    may_http_server_t *srv;
    ASSERT_EQ(may_http_start(&srv, lfd, CFG()), 0);
    /* an idle kept-alive connection and one with a request in progress */
    int idle = hc_open();
    hc_send(idle, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    bool eof;
    free(hc_read_for(idle, "\r\n\r\nhi", &eof));
    int busy = hc_open();
    hc_send(busy, "GET /slow?300 HTTP/1.1\r\nHost: a\r\n\r\n");
    may_co_t *co;
    ASSERT_EQ(may_spawn(&co, slow_client, (void *)(intptr_t)busy, NULL), 0);
    may_sleep(TEST_MS(50));
    int done0 = atomic_load(&slow_done);
    int64_t t0 = may_now();
    ASSERT_EQ(may_http_stop(srv, may_deadline_in(TEST_MS(3000))), 0);
    /* it waited for the slow request, which was answered (with a close) */
    ASSERT_EQ(atomic_load(&slow_done), done0 + 1);
    ASSERT_GE(may_now() - t0, TEST_MS(150));
    void *ok;
    ASSERT_EQ(may_join(co, &ok, MAY_FOREVER), MAY_DONE);
    ASSERT(ok);
    /* the idle one was closed */
    char *r = hc_read_until(idle, may_deadline_in(TEST_MS(1000)), &eof);
    ASSERT(eof);
    free(r);
    may_tcp_close(idle);
    /* the accept loop stopped: a new connection is not served */
    int fd = hc_open();
    hc_send(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    char buf[64];
    ASSERT_EQ(may_tcp_read(fd, buf, sizeof buf, may_deadline_in(TEST_MS(200))), -ETIMEDOUT);
    may_tcp_close(fd);
    may_tcp_close(lfd);

    /* a request longer than the stop's deadline: cancelled, -ETIMEDOUT */
    lfd = listen_any();
    ASSERT_EQ(may_http_start(&srv, lfd, CFG()), 0);
    busy = hc_open();
    hc_send(busy, "GET /slow?5000 HTTP/1.1\r\nHost: a\r\n\r\n");
    may_sleep(TEST_MS(50));
    t0 = may_now();
    ASSERT_EQ(may_http_stop(srv, may_deadline_in(TEST_MS(200))), -ETIMEDOUT);
    ASSERT_LT(may_now() - t0, TEST_MS(2000));
    may_tcp_close(busy);
    may_tcp_close(lfd);
}

static void test_api(void)
{
    may_http_server_t *srv = NULL;
    ASSERT_EQ(may_http_start(&srv, -1, &(may_http_config_t){ 0 }), -EINVAL); /* no handler */
    ASSERT_EQ(may_http_start(&srv, -2, CFG()), -EINVAL);
    ASSERT_EQ(may_http_start_sized(&srv, -1, CFG(), 8), -EINVAL); /* too small */
    struct {
        may_http_config_t cfg;
        int later_field;
    } big = { .cfg = { .handler = handler }, .later_field = 1 };
    ASSERT_EQ(may_http_start_sized(&srv, -1, &big.cfg, sizeof big), -E2BIG);
    big.later_field = 0;
    ASSERT_EQ(may_http_start_sized(&srv, -1, &big.cfg, sizeof big), 0);
    ASSERT_EQ(may_http_serve_conn(srv, -1), -EINVAL);
    ASSERT_EQ(may_http_stop(srv, MAY_FOREVER), 0);
}

static void *tests(void *arg)
{
    (void)arg;
    int lfd = listen_any();
    may_http_server_t *srv;
    ASSERT_EQ(may_http_start(&srv, lfd, CFG()), 0);
    test_rfc();
    test_bodies();
    test_limits();
    test_timeouts();
    ASSERT_EQ(may_http_stop(srv, may_deadline_in(TEST_MS(5000))), 0);
    may_tcp_close(lfd);
    test_max_conns();
    test_stop();
    test_api();
    return NULL;
}

int main(void)
{
    may_co_t *co;
    ASSERT_EQ(may_spawn(&co, tests, NULL, &(may_spawn_opts_t){ .stack_size = 256 * 1024 }), 0);
    ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
