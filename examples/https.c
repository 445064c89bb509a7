/* https.c - the HTTP/1.1 server of examples/http.c over TLS (OpenSSL).
 *
 *   https [port [seconds [cert.pem key.pem]]]
 *                   port 8443 by default, 127.0.0.1 only; seconds > 0: stop
 *                   after that long; without files, a self-signed EC P-256
 *                   certificate for 127.0.0.1 / localhost is made at startup
 *
 * Same routes, keep-alive and pipelining as http.c, whose connection code
 * this file includes (HTTP_NO_MAIN) with its HTTP_IO_* hooks pointed at TLS:
 * each accepted socket gets an SSL object (SSL_set_fd on the non-blocking
 * socket).  SSL_accept / SSL_read / SSL_write run in the connection's
 * coroutine; on SSL_ERROR_WANT_READ / WANT_WRITE it waits with may_fd_wait,
 * so only that coroutine waits, never its worker thread.
 *
 * Notes:
 * - OpenSSL's error queue is per thread and a coroutine may move between
 *   workers while it waits: each SSL call clears the queue first and
 *   SSL_get_error runs right after it, with no wait in between.
 * - The socket BIO writes with write(2), so a peer that is gone would raise
 *   SIGPIPE: https_init ignores SIGPIPE for the process.
 * - Handshakes use more stack than plain HTTP: main (and tests/test_https.c)
 *   configure 256 KiB coroutine stacks.
 * - Only this example and its test link OpenSSL; libmay does not. */
#include "may_http.h"
#include "usage.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define HTTPS_HANDSHAKE_S 10 /* a handshake must finish within this */
#define HTTPS_STACK (256 * 1024)

/* ---- TLS over a may socket --------------------------------------------- */

/* Wait as SSL_get_error(ssl, r) asks: 0 to retry the call, or a -errno:
 * -ETIMEDOUT / -ECANCELED / -EBADF from the wait, -ECONNRESET for an EOF or
 * a socket error, -EPROTO for a TLS error.  errno is neither written nor
 * read here: it belongs to the worker thread, shared by its coroutines (and
 * TSan, which sees each coroutine as a thread, reports such writes). */
static int tls_wait(SSL *ssl, int r, int64_t deadline)
{
    int fd = SSL_get_fd(ssl);
    int e = SSL_get_error(ssl, r);
    int w;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        w = may_fd_wait(fd, MAY_READ, deadline);
        return w < 0 ? w : 0;
    case SSL_ERROR_WANT_WRITE:
        w = may_fd_wait(fd, MAY_WRITE, deadline);
        return w < 0 ? w : 0;
    case SSL_ERROR_ZERO_RETURN: /* close_notify */
        return -ECONNRESET;
    case SSL_ERROR_SYSCALL: /* reset, or EOF inside a TLS record */
        return -ECONNRESET;
    default:
        return -EPROTO;
    }
}

/* The TLS handshake (SSL_accept or SSL_connect, as set on ssl).  0 or -errno. */
static int tls_handshake(SSL *ssl, int64_t deadline)
{
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(ssl);
        if (r == 1)
            return 0;
        int w = tls_wait(ssl, r, deadline);
        if (w < 0)
            return w;
    }
}

/* Bytes read (> 0), 0 at EOF, or -errno.  The SSL_CTX should have
 * SSL_OP_IGNORE_UNEXPECTED_EOF, else a TCP EOF without close_notify is
 * -EPROTO. */
static ssize_t tls_read(SSL *ssl, void *buf, size_t n, int64_t deadline)
{
    int want = n > INT_MAX ? INT_MAX : (int)n;
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(ssl, buf, want);
        if (r > 0)
            return r;
        int e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN) /* close_notify, or TCP EOF (the ctx */
            return 0;                   /* has SSL_OP_IGNORE_UNEXPECTED_EOF) */
        int w = tls_wait(ssl, r, deadline);
        if (w < 0)
            return w;
    }
}

/* Write all n bytes: n or -errno. */
static ssize_t tls_write_all(SSL *ssl, const void *buf, size_t n, int64_t deadline)
{
    size_t done = 0;
    while (done < n) {
        size_t left = n - done;
        int chunk = left > INT_MAX ? INT_MAX : (int)left;
        ERR_clear_error();
        int r = SSL_write(ssl, (const char *)buf + done, chunk);
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        int w = tls_wait(ssl, r, deadline); /* retried with the same arguments */
        if (w < 0)
            return w;
    }
    return (ssize_t)n;
}

/* Send close_notify (best effort: waits for the socket until the deadline,
 * not for the peer's close_notify). */
static void tls_shutdown(SSL *ssl, int64_t deadline)
{
    for (;;) {
        ERR_clear_error();
        int r = SSL_shutdown(ssl);
        if (r >= 0) /* 0: ours is sent; 1: both */
            return;
        if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_WRITE)
            return;
        if (may_fd_wait(SSL_get_fd(ssl), MAY_WRITE, deadline) < 0)
            return;
    }
}

/* ---- The server's SSL_CTX ---------------------------------------------- */

static SSL_CTX *https_ctx; /* set by https_init before the server starts */

/* A self-signed certificate for 127.0.0.1 and localhost, valid for a day,
 * with a fresh EC P-256 key; both in memory.  0 or -1. */
static int https_self_signed(EVP_PKEY **pkey_out, X509 **cert_out)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = NULL;
    X509_EXTENSION *ext = NULL;
    X509V3_CTX v3;
    int ok = 0;
    if (!pkey || !x)
        goto out;
    X509_set_version(x, 2); /* v3 */
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(time(NULL) & 0x7fffffff));
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    if (!X509_set_pubkey(x, pkey))
        goto out;
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"may", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
                               -1, -1, 0);
    if (!X509_set_issuer_name(x, name))
        goto out;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    if (!ext || !X509_add_ext(x, ext, -1))
        goto out;
    if (!X509_sign(x, pkey, EVP_sha256()))
        goto out;
    ok = 1;
out:
    X509_EXTENSION_free(ext);
    if (!ok) {
        EVP_PKEY_free(pkey);
        X509_free(x);
        return -1;
    }
    *pkey_out = pkey;
    *cert_out = x;
    return 0;
}

/* Make the server context: from PEM files (cert_file and key_file), or
 * with a self-signed certificate when cert_file is NULL.  0 or -1 (OpenSSL's
 * errors printed). */
static int https_init(const char *cert_file, const char *key_file)
{
    signal(SIGPIPE, SIG_IGN); /* the socket BIO uses write(2) */
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF); /* TCP EOF: EOF */
    if (cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)
            goto fail;
    } else {
        EVP_PKEY *pkey;
        X509 *cert;
        if (https_self_signed(&pkey, &cert) < 0)
            goto fail;
        int ok = SSL_CTX_use_certificate(ctx, cert) == 1 &&
                 SSL_CTX_use_PrivateKey(ctx, pkey) == 1;
        X509_free(cert); /* the context holds references */
        EVP_PKEY_free(pkey);
        if (!ok)
            goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    https_ctx = ctx;
    return 0;
fail:
    ERR_print_errors_fp(stderr);
    SSL_CTX_free(ctx);
    return -1;
}

__attribute__((unused)) static void https_fini(void) /* tests: after the server */
{
    SSL_CTX_free(https_ctx);
    https_ctx = NULL;
}

/* ---- libmay_http's transport over TLS ------------------------------------ */

/* After accept: the SSL object and the handshake.  0 or -errno (*conn is
 * set even on failure, for https_close). */
static int https_open(void *arg, int fd, void **conn, int64_t deadline)
{
    (void)deadline; /* the handshake has its own, shorter one */
    SSL *ssl = SSL_new(arg);
    *conn = ssl;
    if (!ssl || SSL_set_fd(ssl, fd) != 1)
        return -ENOMEM;
    SSL_set_accept_state(ssl);
    return tls_handshake(ssl, may_deadline_in(HTTPS_HANDSHAKE_S * 1000000000LL));
}

static ssize_t https_read(void *conn, int fd, void *buf, size_t n, int64_t deadline)
{
    (void)fd;
    return tls_read(conn, buf, n, deadline);
}

static int https_write_all(void *conn, int fd, const void *buf, size_t n, int64_t deadline)
{
    (void)fd;
    ssize_t r = tls_write_all(conn, buf, n, deadline);
    return r < 0 ? (int)r : 0;
}

static void https_shutdown(void *conn, int fd)
{
    (void)fd;
    tls_shutdown(conn, may_deadline_in(1000000000LL));
}

static void https_close(void *conn)
{
    SSL_free(conn);
}

static const may_http_transport_t https_transport = {
    .open = https_open,
    .read = https_read,
    .write_all = https_write_all,
    .shutdown = https_shutdown,
    .close = https_close,
    .buffered = true, /* TLS records: read, do not wait for the fd first */
};

/* examples/http.c's routes, served through the transport above (its
 * open gets https_ctx as its argument). */
#define HTTP_TRANSPORT &https_transport, .transport_arg = https_ctx
#ifndef HTTP_NO_MAIN
#define HTTP_NO_MAIN
#define HTTPS_MAIN
#endif
#include "http.c"

#ifdef HTTPS_MAIN
static const char usage[] =
    "usage: https [port [seconds [cert.pem key.pem]]]\n"
    "  port      port to listen on, 127.0.0.1 only (default 8443; 0: any free port)\n"
    "  seconds   stop after this many seconds (default 0: run until killed)\n"
    "  cert.pem  certificate chain and private key, PEM (default: a self-signed\n"
    "  key.pem   EC P-256 certificate for 127.0.0.1 and localhost, made at startup)\n"
    "Routes: /plaintext, /json; anything else is 404.\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 4, usage);
    if (argc == 4)
        usage_fail(usage, "a certificate needs its key:", argv[3]);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%ld", argc > 1 ? usage_long(argv[1], 0, 65535, usage) : 8443);
    int seconds = argc > 2 ? (int)usage_long(argv[2], 0, 1000000000, usage) : 0;
    may_configure(&(may_config_t){ .stack_size = HTTPS_STACK });
    if (https_init(argc > 3 ? argv[3] : NULL, argc > 4 ? argv[4] : NULL) < 0) {
        fprintf(stderr, "https: TLS setup failed\n");
        return 1;
    }
    int lfd = may_tcp_listen(addr, 4096, 0);
    if (lfd < 0) {
        fprintf(stderr, "https: listen %s: %s\n", addr, strerror(-lfd));
        return 1;
    }
    may_http_server_t *srv;
    int r = http_start(&srv, lfd);
    if (r < 0) {
        fprintf(stderr, "https: start: %s\n", strerror(-r));
        return 1;
    }
    printf("https: listening on https://127.0.0.1:%d (%d workers, %s)\n",
           may_tcp_local_port(lfd), may_workers(), argc > 3 ? argv[3] : "self-signed");
    fflush(stdout);
    do /* seconds 0: until killed */
        may_sleep((seconds > 0 ? seconds : 3600) * 1000000000LL);
    while (seconds == 0);
    may_http_stop(srv, may_deadline_in(1000000000LL));
    may_tcp_close(lfd);
    printf("https: done\n");
    return 0; /* https_ctx stays: connections may still be running */
}
#endif
