/* http_client.h - a raw HTTP client for libmay_http's tests: send bytes,
 * read what comes back until EOF or a deadline, and pick responses apart
 * with plain string functions (the tests check exact bytes). */
#ifndef MAY_TEST_HTTP_CLIENT_H
#define MAY_TEST_HTTP_CLIENT_H

#include "may_http.h"
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hc_port;

static int hc_open(void)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", hc_port);
    int fd = may_tcp_connect(addr, may_deadline_in(TEST_MS(5000)));
    ASSERT_GE(fd, 0);
    return fd;
}

static void hc_send(int fd, const char *s)
{
    ASSERT_EQ(may_tcp_write_all(fd, s, strlen(s), may_deadline_in(TEST_MS(5000))), (ssize_t)strlen(s));
}

/* Read until EOF (eof: true) or until the deadline; NUL-terminated, caller
 * frees.  *eof says which. */
static char *hc_read_until(int fd, int64_t deadline, bool *eof)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ASSERT(buf != NULL);
    *eof = false;
    for (;;) {
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            ASSERT(buf != NULL);
        }
        ssize_t n = may_tcp_read(fd, buf + len, cap - len - 1, deadline);
        if (n == 0 || n == -ECONNRESET) {
            *eof = true;
            break;
        }
        if (n < 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

/* Read until `count` occurrences of "HTTP/1.1 " begin responses and the
 * last one is complete enough to hold `tail`, or EOF, or 5 s. */
static char *hc_read_for(int fd, const char *tail, bool *eof)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ASSERT(buf != NULL);
    *eof = false;
    int64_t dl = may_deadline_in(TEST_MS(5000));
    buf[0] = '\0';
    while (!strstr(buf, tail)) {
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            ASSERT(buf != NULL);
        }
        ssize_t n = may_tcp_read(fd, buf + len, cap - len - 1, dl);
        if (n <= 0) {
            *eof = n == 0 || n == -ECONNRESET;
            break;
        }
        len += (size_t)n;
        buf[len] = '\0';
    }
    return buf;
}

/* One request on a new connection, the answer read to EOF (the server
 * closes) or for 2 s. */
static char *hc_exchange(const char *req, bool *eof)
{
    int fd = hc_open();
    hc_send(fd, req);
    char *r = hc_read_until(fd, may_deadline_in(TEST_MS(2000)), eof);
    may_tcp_close(fd);
    return r;
}

static int hc_count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

#define EXPECT_HAS(s, what)                                                        \
    do {                                                                           \
        if (!strstr((s), (what))) {                                                \
            fprintf(stderr, "%s:%d: expected \"%s\" in:\n%s\n", __FILE__, __LINE__, \
                    (what), (s));                                                  \
            abort();                                                               \
        }                                                                          \
    } while (0)
#define EXPECT_NOT(s, what)                                                           \
    do {                                                                              \
        if (strstr((s), (what))) {                                                    \
            fprintf(stderr, "%s:%d: did not expect \"%s\" in:\n%s\n", __FILE__, __LINE__, \
                    (what), (s));                                                     \
            abort();                                                                  \
        }                                                                             \
    } while (0)
#define EXPECT_PREFIX(s, what)                                                      \
    do {                                                                            \
        if (strncmp((s), (what), strlen(what)) != 0) {                              \
            fprintf(stderr, "%s:%d: expected to begin with \"%s\":\n%s\n", __FILE__, \
                    __LINE__, (what), (s));                                         \
            abort();                                                                \
        }                                                                           \
    } while (0)

#endif
