/* http.c - an HTTP/1.1 server on libmay_http (may_http.h): may's version of
 * may_minihttp's hello-world.
 *
 *   http [port [seconds]]   port 8080 by default, 127.0.0.1 only;
 *                           seconds > 0: stop after that long
 *
 * Routes (as in the TechEmpower benchmarks):
 *   /plaintext  200 text/plain        "Hello, World!" (13 bytes)
 *   /json       200 application/json  {"message":"Hello, World!"}
 *   /echo       200 the request body back (POST; bodies up to 8 MiB)
 *   /sleep?ms=N 200 text/plain        the request's target, after waiting
 *               N ms (at most 10 000) in the connection's coroutine: a slow
 *               request for tests/real/real_curl.c.  Only in this program
 *               (main turns it on), not where http.c is included.
 *   otherwise   404
 * Everything else (keep-alive, pipelining, the Date header, limits,
 * timeouts, malformed requests) is the library's: docs/HTTP.md.
 *
 * tests/test_http.c includes this file with HTTP_NO_MAIN and runs the
 * server in-process; bench/http.sh measures it against Go net/http, a raw
 * Go server and nginx (docs/BENCHMARKS.md "### HTTP"); examples/https.c
 * includes it to serve the same routes over TLS. */
#include "may_http.h"
#include "usage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* /sleep?ms=N: off unless main turns it on. */
static bool http_sleep_route;

static void http_sleep(may_http_req_t *req, may_http_res_t *res)
{
    size_t n;
    const char *q = may_http_query(req, NULL), *target = may_http_target(req, &n);
    long ms = strncmp(q, "ms=", 3) == 0 ? strtol(q + 3, NULL, 10) : 0;
    if (ms > 0)
        may_sleep((ms < 10000 ? ms : 10000) * 1000000LL);
    char body[80];
    int len = snprintf(body, sizeof body, "%.*s\n", (int)(n < 64 ? n : 64), target);
    may_http_respond(res, 200, "text/plain", body, (size_t)len);
}

static void http_handler(may_http_req_t *req, may_http_res_t *res, void *arg)
{
    (void)arg;
    const char *path = may_http_path(req, NULL);
    if (strcmp(path, "/plaintext") == 0) {
        may_http_respond(res, 200, "text/plain", "Hello, World!", 13);
    } else if (strcmp(path, "/json") == 0) {
        static const char json[] = "{\"message\":\"Hello, World!\"}";
        may_http_respond(res, 200, "application/json", json, sizeof json - 1);
    } else if (strcmp(path, "/echo") == 0) {
        size_t n;
        const void *body = may_http_body(req, &n);
        may_http_respond(res, 200, "application/octet-stream", body, n);
    } else if (http_sleep_route && strcmp(path, "/sleep") == 0) {
        http_sleep(req, res);
    } else {
        may_http_respond(res, 404, "text/plain", "Not Found\n", 10);
    }
}

#ifndef HTTP_TRANSPORT /* examples/https.c: TLS */
#define HTTP_TRANSPORT NULL
#endif

/* Serve on the listening socket lfd (which stays the caller's). */
static int http_start(may_http_server_t **srv, int lfd)
{
    return may_http_start(srv, lfd, &(may_http_config_t){ .handler = http_handler,
                                                          .transport = HTTP_TRANSPORT });
}

#ifndef HTTP_NO_MAIN
static const char usage[] =
    "usage: http [port [seconds]]\n"
    "  port     port to listen on, 127.0.0.1 only (default 8080; 0: any free port)\n"
    "  seconds  stop after this many seconds (default 0: run until killed)\n"
    "Routes: /plaintext, /json, /echo (the body back), /sleep?ms=N (answers\n"
    "after N ms); anything else is 404.\n";

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
    may_http_server_t *srv;
    int r = http_start(&srv, lfd);
    if (r < 0) {
        fprintf(stderr, "http: start: %s\n", strerror(-r));
        return 1;
    }
    printf("http: listening on 127.0.0.1:%d (%d workers)\n", may_tcp_local_port(lfd), may_workers());
    fflush(stdout);
    do /* seconds 0: until killed */
        may_sleep((seconds > 0 ? seconds : 3600) * 1000000000LL);
    while (seconds == 0);
    may_http_stop(srv, may_deadline_in(1000000000));
    may_tcp_close(lfd);
    printf("http: done\n");
    return 0;
}
#endif
