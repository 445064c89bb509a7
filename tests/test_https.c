/* The HTTPS example (examples/https.c) in-process, with its self-signed
 * certificate: curl over TLS (/plaintext, /json, 404, keep-alive reuse of
 * one connection for two URLs), a stalled handshake that must not hold up
 * other connections, and TLS clients written with OpenSSL over
 * may_tcp_connect (SSL_connect / SSL_write / SSL_read waiting with
 * may_fd_wait) from coroutines, several at once, and from a plain thread. */
#define HTTP_NO_MAIN
#include "../examples/https.c"
#include "test.h"

#include <sys/wait.h>

static int port;

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

static void expect_eq(const char *s, const char *want)
{
    if (strcmp(s, want) != 0) {
        fprintf(stderr, "expected \"%s\", got \"%s\"\n", want, s);
        abort();
    }
}

#define CURL "curl -sk --max-time 20 "

static void test_curl(void)
{
    char *r = curl(CURL "https://127.0.0.1:%d/plaintext");
    expect_eq(r, "Hello, World!");
    free(r);

    r = curl(CURL "-i https://127.0.0.1:%d/json");
    ASSERT(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    expect_contains(r, "\r\nContent-Type: application/json\r\n");
    expect_contains(r, "\r\nServer: may\r\n");
    expect_contains(r, "\r\n\r\n{\"message\":\"Hello, World!\"}");
    free(r);

    r = curl(CURL "-o /dev/null -w '%%{http_code}' https://127.0.0.1:%d/nope");
    expect_eq(r, "404");
    free(r);

    /* two URLs, one TLS connection (keep-alive): num_connects is 1, then 0 */
    r = curl(CURL "-w ' %%{num_connects}\\n' "
                  "https://127.0.0.1:%d/plaintext https://127.0.0.1:%d/json");
    expect_eq(r, "Hello, World! 1\n{\"message\":\"Hello, World!\"} 0\n");
    free(r);

    /* the TLS version and the certificate curl saw (verbose goes to stderr) */
    r = curl(CURL "-v https://127.0.0.1:%d/plaintext 2>&1");
    expect_contains(r, "SSL connection using TLSv1.3");
    expect_contains(r, "subject: O=may; CN=localhost");
    free(r);
}

/* ---- an OpenSSL client over may_tcp_connect ----------------------------- */

static SSL_CTX *client_ctx;

/* One TLS connection: `reqs` keep-alive requests (/plaintext and /json in
 * turn), each response read and checked, then close_notify. */
static void tls_client(int reqs)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    int64_t end = may_deadline_in(TEST_MS(20000));
    int fd = may_tcp_connect(addr, end);
    ASSERT_GE(fd, 0);
    SSL *ssl = SSL_new(client_ctx);
    ASSERT(ssl != NULL);
    ASSERT_EQ(SSL_set_fd(ssl, fd), 1);
    ASSERT_EQ(SSL_set_tlsext_host_name(ssl, "localhost"), 1);
    SSL_set_connect_state(ssl);
    ASSERT_EQ(tls_handshake(ssl, end), 0);

    /* the server presents the certificate https_init made */
    X509 *peer = SSL_get1_peer_certificate(ssl);
    ASSERT(peer != NULL);
    ASSERT_EQ(X509_cmp(peer, SSL_CTX_get0_certificate(https_ctx)), 0);
    X509_free(peer);

    for (int i = 0; i < reqs; i++) {
        bool json = i % 2;
        const char *req = json ? "GET /json HTTP/1.1\r\nHost: localhost\r\n\r\n"
                               : "GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";
        const char *body = json ? "{\"message\":\"Hello, World!\"}" : "Hello, World!";
        ASSERT_EQ(tls_write_all(ssl, req, strlen(req), end), (ssize_t)strlen(req));
        /* read one response: headers, then Content-Length bytes */
        char buf[1024];
        size_t len = 0;
        const char *hend = NULL;
        for (;;) {
            buf[len] = 0;
            hend = strstr(buf, "\r\n\r\n");
            if (hend && (size_t)(buf + len - (hend + 4)) >= strlen(body))
                break;
            ssize_t n = tls_read(ssl, buf + len, sizeof buf - 1 - len, end);
            ASSERT_GT(n, 0);
            len += (size_t)n;
        }
        ASSERT(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
        ASSERT_EQ(strcmp(hend + 4, body), 0);
    }
    tls_shutdown(ssl, end);
    SSL_free(ssl);
    ASSERT_EQ(may_tcp_close(fd), 0);
}

static void *client_co(void *arg)
{
    tls_client((int)(intptr_t)arg);
    return NULL;
}

/* Connections that stall the server mid-handshake (nothing sent; half a
 * ClientHello) while other clients are served: the stalled SSL_accept
 * waits in its coroutine only. */
static void test_stalled(void)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    enum { STALLED = 8 };
    int fds[STALLED];
    for (int i = 0; i < STALLED; i++) {
        fds[i] = may_tcp_connect(addr, may_deadline_in(TEST_MS(5000)));
        ASSERT_GE(fds[i], 0);
        if (i % 2) { /* a TLS record header promising 512 bytes, then 3 */
            static const unsigned char part[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01 };
            ASSERT_EQ(may_tcp_write_all(fds[i], part, sizeof part, MAY_FOREVER),
                      (ssize_t)sizeof part);
        }
    }
    enum { CLIENTS = 6 };
    may_co_t *co[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        ASSERT_EQ(may_spawn(&co[i], client_co, (void *)(intptr_t)(i + 1),
                            &(may_spawn_opts_t){ .stack_size = HTTPS_STACK }), 0);
    for (int i = 0; i < CLIENTS; i++)
        ASSERT_EQ(may_join(co[i], NULL, MAY_FOREVER), MAY_DONE);
    char *r = curl(CURL "https://127.0.0.1:%d/plaintext");
    expect_eq(r, "Hello, World!");
    free(r);
    /* garbage instead of a ClientHello: the server drops the connection */
    static const char junk[] = "GET / HTTP/1.1\r\n\r\n";
    ASSERT_EQ(may_tcp_write_all(fds[0], junk, sizeof junk - 1, MAY_FOREVER),
              (ssize_t)sizeof junk - 1);
    char buf[256];
    ssize_t n;
    int64_t end = may_deadline_in(TEST_MS(10000));
    while ((n = may_tcp_read(fds[0], buf, sizeof buf, end)) > 0) {
    }
    ASSERT(n == 0 || n == -ECONNRESET);
    for (int i = 0; i < STALLED; i++)
        ASSERT_EQ(may_tcp_close(fds[i]), 0);
}

int main(void)
{
    ASSERT_EQ(may_configure(&(may_config_t){ .stack_size = HTTPS_STACK }), 0);
    ASSERT_EQ(https_init(NULL, NULL), 0);
    client_ctx = SSL_CTX_new(TLS_client_method());
    ASSERT(client_ctx != NULL);
    SSL_CTX_set_options(client_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL); /* self-signed */

    int lfd = may_tcp_listen("127.0.0.1:0", 128, 0);
    ASSERT_GE(lfd, 0);
    port = may_tcp_local_port(lfd);
    ASSERT_GT(port, 0);
    may_http_server_t *srv;
    ASSERT_EQ(http_start(&srv, lfd), 0);

    test_curl(); /* from this plain thread: popen blocks it */
    may_co_t *co;
    ASSERT_EQ(may_spawn(&co, client_co, (void *)(intptr_t)3,
                        &(may_spawn_opts_t){ .stack_size = HTTPS_STACK }), 0);
    ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);
    tls_client(2); /* the same client from a plain thread */
    test_stalled();

    ASSERT_EQ(may_http_stop(srv, may_deadline_in(TEST_MS(5000))), 0);
    ASSERT_EQ(may_tcp_close(lfd), 0);
    /* the connection coroutines end once their clients closed */
    int64_t end = may_deadline_in(TEST_MS(10000));
    may_stats_t st;
    do {
        may_stats(&st);
        if (st.alive == 0)
            break;
        may_sleep(TEST_MS(1));
    } while (may_now() < end);
    ASSERT_EQ(st.alive, 0);
    ASSERT_EQ(may_shutdown(), 0);
    SSL_CTX_free(client_ctx);
    https_fini();
    printf("ok\n");
    return 0;
}
