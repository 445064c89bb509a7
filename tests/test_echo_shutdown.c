/* The echo example's graceful shutdown (examples/echo.c), as a program:
 * run it, connect, send it a signal, and check that it stops accepting,
 * lets the connection in progress finish, cancels the one that does not
 * finish within its grace period (ECHO_GRACE_MS), prints its summary and
 * exits 0.
 *
 *   1. SIGTERM with two connections open, grace 3 s: a new connection is
 *      refused, connection A goes on echoing and closes, idle B is closed
 *      by the server (cancelled) once the grace is over: "1 finished, 1
 *      cancelled", exit 0.
 *   2. SIGINT with one connection open, grace 60 s: it finishes and the
 *      server exits without waiting out the grace: "1 finished, 0
 *      cancelled", exit 0.
 *
 * The program is examples/echo next to this test's directory (or $ECHO_BIN);
 * without it (examples not built) the test says so and passes.  The server
 * is started with a 60-second lifetime, so a failed test leaves no server
 * behind for long. */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define LONG_WAIT TEST_MS(20000) /* for what must come: generous */

static char echo_bin[PATH_MAX];

struct server {
    pid_t pid;
    int out;          /* its stdout */
    char buf[1024];   /* what was read from out and not yet taken as lines */
    size_t len;
    char addr[32];
};

/* The next line of the server's output, without its newline (NUL
 * terminated in line); fails the test at the deadline or end of file. */
static void next_line(struct server *s, char *line, size_t cap)
{
    int64_t end = may_deadline_in(LONG_WAIT);
    for (;;) {
        char *nl = memchr(s->buf, '\n', s->len);
        if (nl) {
            size_t n = (size_t)(nl - s->buf);
            ASSERT_LT(n, cap);
            memcpy(line, s->buf, n);
            line[n] = 0;
            s->len -= n + 1;
            memmove(s->buf, nl + 1, s->len);
            printf("  server: %s\n", line);
            return;
        }
        ASSERT_LT(s->len, sizeof s->buf);
        ssize_t r = may_read(s->out, s->buf + s->len, sizeof s->buf - s->len, end);
        ASSERT_GT(r, 0);
        s->len += (size_t)r;
    }
}

static void start(struct server *s, long grace_ms)
{
    char grace[64];
    snprintf(grace, sizeof grace, "ECHO_GRACE_MS=%ld", grace_ms);
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    ASSERT(env != NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "ECHO_GRACE_MS=", 14) != 0)
            env[k++] = environ[i];
    env[k++] = grace;
    env[k] = NULL;

    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    ASSERT_EQ(posix_spawn_file_actions_init(&fa), 0);
    ASSERT_EQ(posix_spawn_file_actions_adddup2(&fa, p[1], 1), 0);
    char *argv[] = { "echo", "127.0.0.1:0", "60", NULL };
    ASSERT_EQ(posix_spawn(&s->pid, echo_bin, &fa, NULL, argv, env), 0);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(p[1]);
    s->out = p[0];
    s->len = 0;

    char line[256];
    int port = 0;
    next_line(s, line, sizeof line);
    ASSERT_EQ(sscanf(line, "echo: listening on port %d", &port), 1);
    ASSERT_GT(port, 0);
    snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", port);
}

/* Wait for the server to exit: its status. */
static int finish(struct server *s)
{
    char c;
    ASSERT_EQ(may_read(s->out, &c, 1, may_deadline_in(LONG_WAIT)), 0); /* EOF: it closed */
    ASSERT_EQ(may_fd_close(s->out), 0);
    int st;
    ASSERT_EQ(waitpid(s->pid, &st, 0), s->pid);
    return st;
}

static int dial(struct server *s)
{
    int fd = may_tcp_connect(s->addr, may_deadline_in(LONG_WAIT));
    ASSERT_GE(fd, 0);
    return fd;
}

static void round_trip(int fd, const char *msg)
{
    char in[64];
    size_t n = strlen(msg);
    ASSERT_EQ(may_tcp_write_all(fd, msg, n, may_deadline_in(LONG_WAIT)), (ssize_t)n);
    ASSERT_EQ(may_tcp_read_full(fd, in, n, may_deadline_in(LONG_WAIT)), (ssize_t)n);
    ASSERT(memcmp(in, msg, n) == 0);
}

static void sigterm_with_an_idle_connection(void)
{
    struct server s;
    char line[256];
    start(&s, 3000);
    int a = dial(&s), b = dial(&s);
    round_trip(a, "hello from a"); /* both accepted and open */
    round_trip(b, "hello from b");

    ASSERT_EQ(kill(s.pid, SIGTERM), 0);
    next_line(&s, line, sizeof line);
    ASSERT(strcmp(line, "echo: SIGTERM: stopped accepting; 2 connections open, "
                        "3000 ms to finish") == 0);
    /* the listener is closed: nobody is let in any more */
    ASSERT_EQ(may_tcp_connect(s.addr, may_deadline_in(LONG_WAIT)), -ECONNREFUSED);
    /* the connection in progress goes on, and ends when its client says */
    round_trip(a, "still there?");
    round_trip(a, "yes, until I close");
    ASSERT_EQ(may_tcp_close(a), 0);
    /* b never closes: the server cancels it after the grace (EOF here) */
    char c;
    ASSERT_EQ(may_tcp_read(b, &c, 1, may_deadline_in(LONG_WAIT)), 0);
    ASSERT_EQ(may_tcp_close(b), 0);
    next_line(&s, line, sizeof line);
    ASSERT(strcmp(line, "echo: done: 2 connections served, 1 finished after the stop, "
                        "1 cancelled") == 0);
    int st = finish(&s);
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
}

static void sigint_all_finish(void)
{
    struct server s;
    char line[256];
    start(&s, 60000);
    int a = dial(&s);
    round_trip(a, "hello");
    int64_t t0 = may_now();
    ASSERT_EQ(kill(s.pid, SIGINT), 0);
    next_line(&s, line, sizeof line);
    ASSERT(strcmp(line, "echo: SIGINT: stopped accepting; 1 connections open, "
                        "60000 ms to finish") == 0);
    round_trip(a, "finishing");
    ASSERT_EQ(may_tcp_close(a), 0);
    next_line(&s, line, sizeof line);
    ASSERT(strcmp(line, "echo: done: 1 connections served, 1 finished after the stop, "
                        "0 cancelled") == 0);
    int st = finish(&s);
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
    /* it did not wait out its 60 s of grace (nor its 60 s lifetime) */
    ASSERT_LT(may_now() - t0, TEST_MS(45000));
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *bin = getenv("ECHO_BIN");
    if (bin) {
        snprintf(echo_bin, sizeof echo_bin, "%s", bin);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        ASSERT_GT(n, 0);
        self[n] = 0;
        snprintf(echo_bin, sizeof echo_bin, "%s/../examples/echo", dirname(self));
    }
    if (access(echo_bin, X_OK) != 0) {
        printf("skipped: no echo example at %s (set ECHO_BIN)\n", echo_bin);
        return 0;
    }
    /* Under qemu-user without binfmt (the aarch64 stage) the example, an
     * aarch64 binary, cannot be run from here: skip (77). */
    {
        pid_t pid;
        char *pargv[] = { echo_bin, (char *)"-h", NULL };
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        extern char **environ;
        int st = -1, ok = posix_spawn(&pid, echo_bin, &fa, NULL, pargv, environ) == 0 &&
                          waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
                          WEXITSTATUS(st) == 0;
        posix_spawn_file_actions_destroy(&fa);
        if (!ok) {
            printf("skipped: %s cannot be run from here (an emulator?)\n", echo_bin);
            return 77;
        }
    }
    printf("sigterm, an idle connection cancelled after the grace:\n");
    sigterm_with_an_idle_connection();
    printf("sigint, every connection finishes:\n");
    sigint_all_finish();
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
