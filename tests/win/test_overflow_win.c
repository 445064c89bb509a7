/* Windows: a coroutine that overflows its stack is reported by name, with
 * its stack size, and the process ends with STATUS_STACK_OVERFLOW (the
 * library's stacks from src/win/stack_win.c through src/stack.c; Linux has
 * tests/test_overflow.c).  The argument picks the case: "co" for a deep
 * recursion in a coroutine, "track" for the same with stack-use tracking on
 * (the stack then committed in full, a guard page below it).  ctest checks
 * the report on stderr (tests/win/tests.cmake); the exit status is
 * STATUS_STACK_OVERFLOW, which wine's shell sees as 253. */
#include "../test.h"

static __attribute__((noinline)) long recurse(long n)
{
    volatile char pad[1024];
    pad[0] = (char)n;
    if (n == 0)
        return pad[0];
    return recurse(n - 1) + pad[0];
}

static void *deep(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)recurse(1L << 30);
}

int main(int argc, char **argv)
{
    int track = argc > 1 && strcmp(argv[1], "track") == 0;
    may_co_t *co;
    may_spawn_opts_t o = { .name = "deep-win", .flags = track ? MAY_SPAWN_TRACK_STACK : 0 };
    ASSERT_EQ(may_spawn(&co, deep, NULL, &o), 0);
    may_join(co, NULL, MAY_FOREVER);
    fprintf(stderr, "not reached: the overflow was not caught\n");
    return 1;
}
