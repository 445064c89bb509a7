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
#include <sys/wait.h>
#include <unistd.h>

/* The checker's entry points, if this build has them. */
extern void may__rank_acquire(int rank, const void *lock, int try) __attribute__((weak));
extern void may__rank_release(int rank, const void *lock) __attribute__((weak));
extern void may__rank_assert_held(int rank, const void *lock, const char *where)
    __attribute__((weak));

static char locks[4];

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
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT || !strstr(out, what)) {
        fprintf(stderr, "expected an abort with \"%s\"; status %d, output: %s\n", what, st, out);
        abort();
    }
}

int main(void)
{
    if (!may__rank_acquire) {
        printf("test_lockrank: skipped (built without MAY_LOCKRANK)\n");
        return 0;
    }
    expect_abort(inverted, "taking scope lock");
    expect_abort(objects_backwards, "taking object lock");
    expect_abort(not_held, "not_held: may: lock rank violation: expected to hold idle lock");
    char out[1024];
    int st = in_child(in_order, out, sizeof out);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_EQ(out[0], '\0');
    /* and the runtime's own paths: spawn, channels, timers, a scope */
    may_scope_t *s;
    ASSERT_EQ(may_scope_new(&s), 0);
    ASSERT_EQ(may_sleep_until(may_deadline_in(TEST_MS(1))), 0);
    may_scope_free(s);
    printf("test_lockrank: ok\n");
    return 0;
}
