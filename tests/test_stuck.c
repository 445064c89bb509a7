/* Stuck reports (src/monitor.c): the monitor names a coroutine that holds
 * its worker for MAY_STUCK_REPORT_MS (default 10 ms) without switching.
 * Each case runs its own runtime of 2 workers (the variable is read at
 * start) with stderr redirected to a temporary file:
 *   a. a coroutine in a 300 ms CPU loop gets exactly one report, with its
 *      id and name, saying its thread is running;
 *   b. one blocked 300 ms in a raw nanosleep gets one, saying blocked;
 *   c. one that yields all through a 300 ms loop gets none (alone on its
 *      worker, its yields do not switch: they must still count);
 *   d. with MAY_STUCK_REPORT_MS=0, the CPU loop of (a) gets none;
 *   e. two CPU loops at once on the two workers get one report between
 *      them: the rate limit allows one a second.
 * Without the reports, (a), (b) and (e) fail; without the count of lone
 * yields, (c) does. */
#include "test.h"

#include <time.h>
#include <unistd.h>

#define LOOP_NS TEST_MS(300)

static void *cpu_loop(void *arg)
{
    (void)arg;
    int64_t start = may_now();
    while (may_now() - start < LOOP_NS)
        ; /* a CPU loop: never yields */
    return NULL;
}

static void *raw_sleep(void *arg)
{
    (void)arg;
    struct timespec ts = { 0, LOOP_NS };
    while (nanosleep(&ts, &ts) != 0) /* blocks the worker's thread */
        ;
    return NULL;
}

static void *yield_loop(void *arg)
{
    (void)arg;
    int64_t start = may_now();
    while (may_now() - start < LOOP_NS)
        may_yield();
    return NULL;
}

/* stderr, captured.  dup2 returns the new fd; the Windows CRT's returns 0 */
#ifdef _WIN32
#define DUP2_OK(fd) 0
#else
#define DUP2_OK(fd) (fd)
#endif
static int saved_fd = -1, cap_fd = -1;

#ifdef _WIN32
static char cap_path[MAX_PATH + 32];
#endif

static void capture_begin(void)
{
#ifdef _WIN32 /* no /tmp; an open file cannot be unlinked: at the end */
    cap_fd = test_tmp_mkstemp(cap_path, "may_test_stuck_XXXXXX");
#else
    char path[] = "/tmp/may_test_stuck_XXXXXX";
    cap_fd = mkstemp(path);
    ASSERT_GE(cap_fd, 0);
    unlink(path);
#endif
    fflush(stderr);
    saved_fd = dup(2);
    ASSERT_GE(saved_fd, 0);
    ASSERT_EQ(dup2(cap_fd, 2), DUP2_OK(2));
}

/* Restore stderr; the captured text, echoed to the real stderr. */
static char *capture_end(void)
{
    fflush(stderr);
    ASSERT_EQ(dup2(saved_fd, 2), DUP2_OK(2));
    close(saved_fd);
    off_t len = lseek(cap_fd, 0, SEEK_END);
    ASSERT_GE(len, 0);
    char *text = calloc(1, (size_t)len + 1);
    ASSERT(text);
#ifdef _WIN32 /* no pread; text mode reads "\r\n" as "\n": fewer bytes */
    ASSERT_EQ(lseek(cap_fd, 0, SEEK_SET), 0);
    int got = read(cap_fd, text, (unsigned)len);
    ASSERT(got >= 0 && got <= len);
    text[got] = 0;
    close(cap_fd);
    ASSERT_EQ(unlink(cap_path), 0);
#else
    ASSERT_EQ(pread(cap_fd, text, (size_t)len, 0), len);
    close(cap_fd);
#endif
    fputs(text, stderr);
    return text;
}

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* Run the coroutines fns[0..n) (named names[i]) on a fresh runtime of 2
 * workers with stderr captured; their ids in ids[].  The captured text. */
static char *run(int n, may_fn_t *fns, const char **names, uint64_t *ids)
{
    /* without the hand-off: a blocked worker would be handed off, not
     * reported (test_handoff) */
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2, .no_handoff = true }), 0);
    ASSERT_EQ(may_start(), 0);
    capture_begin();
    may_co_t *co[2];
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(may_spawn(&co[i], fns[i], NULL, &(may_spawn_opts_t){ .name = names[i] }), 0);
        ids[i] = may_co_id(co[i]);
    }
    for (int i = 0; i < n; i++)
        ASSERT_EQ(may_join(co[i], NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_shutdown(), 0);
    return capture_end();
}

/* The report of coroutine id named name: exactly one, saying what. */
static void expect_one(const char *text, uint64_t id, const char *name, const char *what)
{
    char head[96];
    snprintf(head, sizeof head, "may: coroutine %" PRIu64 " \"%s\" has held worker ", id, name);
    ASSERT_EQ(count(text, head), 1);
    const char *line = strstr(text, head);
    const char *eol = strchr(line, '\n');
    ASSERT(eol);
    const char *w = strstr(line, what);
#ifdef _WIN32
    /* the monitor reads the thread's state from /proc; Windows has none,
     * so the report may say the state is unknown */
    if (!w || w > eol) {
        w = strstr(line, "its thread's state is unknown");
        if (w && w < eol)
            printf("note: the report says the thread's state is unknown, not \"%s\"\n", what);
    }
#endif
    ASSERT(w && w < eol);
}

int main(void)
{
    uint64_t ids[2];
    char *text;

    /* a */
    text = run(1, (may_fn_t[]){ cpu_loop }, (const char *[]){ "cpu-loop" }, ids);
    expect_one(text, ids[0], "cpu-loop", "its thread is running");
    ASSERT_EQ(count(text, "may: coroutine"), 1);
    free(text);

    /* b */
    text = run(1, (may_fn_t[]){ raw_sleep }, (const char *[]){ "raw-sleep" }, ids);
    expect_one(text, ids[0], "raw-sleep", "its thread is blocked in a system call");
    ASSERT_EQ(count(text, "may: coroutine"), 1);
    free(text);

    /* c, with a 100 ms threshold: a loaded machine (the aarch64 stage runs
     * under qemu, two tests at a time) can keep the looping thread off
     * its CPU for over 10 ms, which is no progress either; without the
     * lone-yield count the loop is still reported after 100 of its 300 ms */
    ASSERT_EQ(setenv("MAY_STUCK_REPORT_MS", "100", 1), 0);
    text = run(1, (may_fn_t[]){ yield_loop }, (const char *[]){ "yield-loop" }, ids);
    ASSERT_EQ(count(text, "may: coroutine"), 0);
    free(text);
    ASSERT_EQ(unsetenv("MAY_STUCK_REPORT_MS"), 0);

    /* d */
    ASSERT_EQ(setenv("MAY_STUCK_REPORT_MS", "0", 1), 0);
    text = run(1, (may_fn_t[]){ cpu_loop }, (const char *[]){ "cpu-loop" }, ids);
    ASSERT_EQ(count(text, "may: coroutine"), 0);
    free(text);
    ASSERT_EQ(unsetenv("MAY_STUCK_REPORT_MS"), 0);

    /* e */
    text = run(2, (may_fn_t[]){ cpu_loop, cpu_loop }, (const char *[]){ "loop-1", "loop-2" }, ids);
    /* the rate limit: one report for the two (which of them, and how it is
     * classed, is not this case's point: under valgrind, which runs one
     * thread at a time, a looping thread waiting for its turn looks
     * blocked) */
    ASSERT_EQ(count(text, "may: coroutine"), 1);
    free(text);
    return 0;
}
