/* libmay_http against third-party clients, each run as a child process from
 * this plain thread while the server runs in-process:
 * - ab -k (Apache Bench, HTTP/1.0 with keep-alive): every request answered
 *   and every one kept alive (before the library said "Connection:
 *   keep-alive" to HTTP/1.0 clients, ab -k hung);
 * - curl POSTing 2 MiB: curl sends "Expect: 100-continue" and must get the
 *   interim 100 (else it waits a second before sending the body);
 * - python3's http.client (py_client.py): keep-alive reuse, chunked upload,
 *   HEAD, a 1 MiB response.
 * A client that is not installed skips the test (77) unless all are there. */
#include "may_http.h"
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char *big;

static void handler(may_http_req_t *req, may_http_res_t *res, void *arg)
{
    (void)arg;
    const char *path = may_http_path(req, NULL);
    if (strcmp(path, "/plaintext") == 0) {
        may_http_respond(res, 200, "text/plain", "Hello, World!", 13);
    } else if (strcmp(path, "/echo") == 0) {
        size_t n;
        const void *b = may_http_body(req, &n);
        may_http_respond(res, 200, "application/octet-stream", b, n);
    } else if (strcmp(path, "/big") == 0) {
        may_http_respond(res, 200, "application/octet-stream", big, 1 << 20);
    } else {
        may_http_respond(res, 404, "text/plain", "nf", 2);
    }
}

/* Run a shell command, return its stdout+stderr (caller frees) and status. */
static char *run(const char *cmd, int *status)
{
    FILE *f = popen(cmd, "r");
    ASSERT(f != NULL);
    size_t cap = 1 << 16, len = 0, n;
    char *out = malloc(cap);
    ASSERT(out != NULL);
    while ((n = fread(out + len, 1, cap - 1 - len, f)) > 0) {
        len += n;
        if (cap - 1 - len == 0) {
            cap *= 2;
            out = realloc(out, cap);
            ASSERT(out != NULL);
        }
    }
    out[len] = '\0';
    int st = pclose(f);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return out;
}

static bool have(const char *prog)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

static void expect(const char *out, const char *what)
{
    if (!strstr(out, what)) {
        fprintf(stderr, "expected \"%s\" in:\n%s\n", what, out);
        abort();
    }
}

int main(void)
{
    if (!have("ab") || !have("curl") || !have("python3")) {
        printf("skip: ab, curl or python3 missing (scripts/deps.sh installs them)\n");
        return 77;
    }
    big = malloc(1 << 20);
    ASSERT(big != NULL);
    memset(big, 'x', 1 << 20);
    int lfd = may_tcp_listen("127.0.0.1:0", 128, 0);
    ASSERT_GE(lfd, 0);
    int port = may_tcp_local_port(lfd);
    may_http_server_t *srv;
    ASSERT_EQ(may_http_start(&srv, lfd, &(may_http_config_t){ .handler = handler }), 0);
    char cmd[512];
    int st;

    /* ab -k: HTTP/1.0 keep-alive */
    snprintf(cmd, sizeof cmd, "timeout 60 ab -k -n 2000 -c 8 http://127.0.0.1:%d/plaintext 2>&1", port);
    char *out = run(cmd, &st);
    if (st != 0)
        fprintf(stderr, "%s\n", out);
    ASSERT_EQ(st, 0);
    expect(out, "Complete requests:      2000");
    expect(out, "Failed requests:        0");
    expect(out, "Keep-Alive requests:    2000");
    free(out);
    may_http_stats_t s;
    may_http_stats(srv, &s);
    ASSERT_LE(s.accepted, 8 + 1); /* one connection per ab client */

    /* curl: a 2 MiB POST with Expect: 100-continue */
    snprintf(cmd, sizeof cmd,
             "head -c 2097152 /dev/zero > /tmp/may_http_post.$$ && "
             "timeout 60 curl -sS -v -o /dev/null -w 'code=%%{http_code} size=%%{size_download} "
             "t=%%{time_total}\\n' --data-binary @/tmp/may_http_post.$$ "
             "http://127.0.0.1:%d/echo 2>&1; r=$?; rm -f /tmp/may_http_post.$$; exit $r", port);
    out = run(cmd, &st);
    if (st != 0)
        fprintf(stderr, "%s\n", out);
    ASSERT_EQ(st, 0);
    expect(out, "> Expect: 100-continue");
    expect(out, "< HTTP/1.1 100 Continue");
    expect(out, "code=200 size=2097152");
    printf("curl 2 MiB POST: %s", strstr(out, "code="));
    free(out);

    /* python3 http.client */
    snprintf(cmd, sizeof cmd, "timeout 60 python3 %s/py_client.py %d 2>&1", MAY_HTTP_TEST_DIR, port);
    out = run(cmd, &st);
    if (st != 0)
        fprintf(stderr, "%s\n", out);
    ASSERT_EQ(st, 0);
    expect(out, "py_client: ok");
    free(out);

    ASSERT_EQ(may_http_stop(srv, may_deadline_in(TEST_MS(5000))), 0);
    may_tcp_close(lfd);
    free(big);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
