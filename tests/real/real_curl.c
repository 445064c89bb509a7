/* real_curl.c - Debian's unmodified libcurl, easy interface
 * (curl_easy_perform), from 100 coroutines on one worker, against the
 * project's own HTTP example (tests/real/real.h has the harness).
 *
 * The server is examples/http.c, started here as a child process before
 * the runtime starts ("http 0 60": any free port, gone after 60 s at the
 * latest, and with the parent thanks to PR_SET_PDEATHSIG).  Each coroutine
 * GETs /sleep?ms=100&co=<i> on its own connection (curl_easy_init per
 * request); the server waits 100 ms in that connection's coroutine and
 * answers with the request's URL, which the coroutine checks is its own.
 *
 * The server's path: $MAY_TEST_HTTP_BIN, else the one CMake built
 * (REAL_HTTP_BIN); not there: skip (77). */
#include <curl/curl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "real.h"

static int port;

typedef struct body {
    char buf[128];
    size_t len;
} body_t;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    body_t *b = arg;
    size_t k = size * n, room = sizeof b->buf - 1 - b->len;
    memcpy(b->buf + b->len, p, k < room ? k : room);
    b->len += k < room ? k : room;
    b->buf[b->len] = 0;
    return k;
}

static int request(int i, char *err, size_t errlen)
{
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(err, errlen, "curl_easy_init failed");
        return -1;
    }
    char url[128], want[64];
    snprintf(want, sizeof want, "/sleep?ms=%d&co=%d\n", REAL_REQUEST_MS, i);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%.*s", port, (int)strlen(want) - 1, want);
    body_t b = { .len = 0 };
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    int rc = -1;
    long status = 0;
    CURLcode e = curl_easy_perform(h);
    if (e != CURLE_OK)
        snprintf(err, errlen, "GET %s: %s", url, curl_easy_strerror(e));
    else if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200)
        snprintf(err, errlen, "GET %s: status %ld", url, status);
    else if (strcmp(b.buf, want) != 0)
        snprintf(err, errlen, "GET %s: body '%s'", url, b.buf);
    else
        rc = 0;
    curl_easy_cleanup(h);
    return rc;
}

/* Start "http 0 60" with its stdout on a pipe; read the port it prints. */
static pid_t start_server(const char *bin)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(bin, bin, "0", "60", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[256];
    /* "http: listening on 127.0.0.1:PORT (N workers)" */
    if (pid < 0 || !f || !fgets(line, sizeof line, f) ||
        sscanf(line, "http: listening on 127.0.0.1:%d", &port) != 1) {
        fprintf(stderr, "real_curl: %s did not start\n", bin);
        if (pid > 0)
            kill(pid, SIGTERM);
        return -1;
    }
    fclose(f); /* the child's later lines go nowhere; it never writes many */
    return pid;
}

int main(int argc, char **argv)
{
    const char *bin = real_env("MAY_TEST_HTTP_BIN", NULL);
#ifdef REAL_HTTP_BIN
    if (!bin)
        bin = REAL_HTTP_BIN;
#endif
    if (!bin || access(bin, X_OK) != 0) {
        printf("real_curl: skipped: no HTTP example to run (MAY_TEST_HTTP_BIN)\n");
        return REAL_SKIP;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "real_curl: curl_global_init failed\n");
        return 1;
    }
    pid_t pid = start_server(bin);
    if (pid < 0)
        return 1;
    int rc = real_main(argc, argv, "real_curl", request);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    curl_global_cleanup();
    return rc;
}
