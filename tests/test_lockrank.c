/* The lock order checker (src/lockrank.h), in builds made with
 * MAY_LOCKRANK (the ASan and TSan stages of `make test`, and Debug
 * builds): taking locks against the ranked table, out of address order
 * within OBJECT, or a "lock held" precondition that does not hold, aborts
 * with a message naming the locks.  The rest of the suite, run in those
 * builds, checks that the runtime's real paths keep the order.
 * Elsewhere the checker is compiled out and this test says so. */
#include "test.h"

#include "../src/lockrank.h"

#include <signal.h>
#ifndef _WIN32
#include <sys/wait.h>
#endif
#include <unistd.h>

/* The checker's entry points, if this build has them. */
extern void may__rank_acquire(int rank, const void *lock, int try) __attribute__((weak));
extern void may__rank_release(int rank, const void *lock) __attribute__((weak));
extern void may__rank_assert_held(int rank, const void *lock, const char *where)
    __attribute__((weak));

static char locks[4];

#ifdef _WIN32
/* No fork: the child is this program run again with the case's name
 * (main below), through _popen with its stderr joined to the pipe; its
 * status is the exit code (abort() exits with 3). */
static void (*child_fn(const char *name))(void);
static const char *child_name(void (*fn)(void));
static char self[4096];
#define CHILD_ABORTED(st) ((st) == 3)
#define CHILD_OK(st) ((st) == 0)

static int in_child(void (*fn)(void), char *out, size_t outsz)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "\"%s\" child %s 2>&1", self, child_name(fn));
    fflush(stdout);
    fflush(stderr);
    FILE *p = _popen(cmd, "r");
    ASSERT(p != NULL);
    size_t n = 0, r;
    while (n + 1 < outsz && (r = fread(out + n, 1, outsz - 1 - n, p)) > 0)
        n += r;
    out[n] = '\0';
    return _pclose(p);
}
#else
#define CHILD_ABORTED(st) (WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT)
#define CHILD_OK(st) (WIFEXITED(st) && WEXITSTATUS(st) == 0)

/* Run fn in a child with stderr captured; return its wait status and what
 * it printed. */
static int in_child(void (*fn)(void), char *out, size_t outsz)
{
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        fn();
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < outsz && (r = read(p[0], out + n, outsz - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(p[0]);
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    return st;
}
#endif

static void inverted(void)
{
    may__rank_acquire(MAY__RANK_TIMER, &locks[0], 0);
    may__rank_acquire(MAY__RANK_SCOPE, &locks[1], 0); /* scope is outer */
}

static void objects_backwards(void)
{
    may__rank_acquire(MAY__RANK_OBJECT, &locks[2], 0);
    may__rank_acquire(MAY__RANK_OBJECT, &locks[1], 0);
}

static void not_held(void)
{
    may__rank_acquire(MAY__RANK_GQ, &locks[0], 0);
    may__rank_assert_held(MAY__RANK_IDLE, &locks[1], "not_held");
}

static void in_order(void)
{
    may__rank_acquire(MAY__RANK_SCOPE, &locks[0], 0);
    may__rank_acquire(MAY__RANK_OBJECT, &locks[1], 0);
    may__rank_acquire(MAY__RANK_OBJECT, &locks[2], 0); /* higher address */
    may__rank_acquire(MAY__RANK_TIMER, &locks[3], 0);
    may__rank_assert_held(MAY__RANK_OBJECT, &locks[1], "in_order");
    may__rank_release(MAY__RANK_OBJECT, &locks[1]); /* not LIFO: allowed */
    may__rank_release(MAY__RANK_TIMER, &locks[3]);
    may__rank_release(MAY__RANK_OBJECT, &locks[2]);
    /* a trylock may break the order: it cannot wait */
    may__rank_acquire(MAY__RANK_START, &locks[2], 1);
    may__rank_release(MAY__RANK_START, &locks[2]);
    may__rank_release(MAY__RANK_SCOPE, &locks[0]);
}

static void expect_abort(void (*fn)(void), const char *what)
{
    char out[1024];
    int st = in_child(fn, out, sizeof out);
    if (!CHILD_ABORTED(st) || !strstr(out, what)) {
        fprintf(stderr, "expected an abort with \"%s\"; status %d, output: %s\n", what, st, out);
        abort();
    }
}

#ifdef _WIN32
static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = { { "inverted", inverted }, { "objects_backwards", objects_backwards },
              { "not_held", not_held }, { "in_order", in_order } };

static void (*child_fn(const char *name))(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!strcmp(cases[i].name, name))
            return cases[i].fn;
    return NULL;
}

static const char *child_name(void (*fn)(void))
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (cases[i].fn == fn)
            return cases[i].name;
    abort();
}
#endif

int main(int argc, char **argv)
{
#ifdef _WIN32
    if (argc == 3 && !strcmp(argv[1], "child")) {
        void (*fn)(void) = child_fn(argv[2]);
        ASSERT(fn != NULL);
        fn();
        return 0;
    }
    DWORD k = GetModuleFileNameA(NULL, self, sizeof self);
    ASSERT(k > 0 && k < sizeof self);
#else
    (void)argc, (void)argv;
#endif
    if (!may__rank_acquire) {
        printf("test_lockrank: skipped (built without MAY_LOCKRANK)\n");
        return 0;
    }
    expect_abort(inverted, "taking scope lock");
    expect_abort(objects_backwards, "taking object lock");
    expect_abort(not_held, "not_held: may: lock rank violation: expected to hold idle lock");
    char out[1024];
    int st = in_child(in_order, out, sizeof out);
    ASSERT(CHILD_OK(st));
    ASSERT_EQ(out[0], '\0');
    /* and the runtime's own paths: spawn, channels, timers, a scope */
    may_scope_t *s;
    ASSERT_EQ(may_scope_new(&s), 0);
    ASSERT_EQ(may_sleep_until(may_deadline_in(TEST_MS(1))), 0);
    may_scope_free(s);
    printf("test_lockrank: ok\n");
    return 0;
}
