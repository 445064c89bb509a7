/* The floating-point control state (rounding mode; on x86-64 the MXCSR and
 * the x87 control word, which the ABI makes callee-saved) belongs to each
 * coroutine: a switch neither leaks one coroutine's mode into another nor
 * loses it, on one worker, across workers, and in generators (aarch64:
 * the FPCR). */
#include "test.h"
#include <fenv.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

static const int modes[4] = { FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO };

/* 1/3 rounded in the current mode, computed at run time. */
static double third(void)
{
    volatile double one = 1.0, three = 3.0;
    return one / three;
}

static double expect_third[4];
static int modes_apply; /* arithmetic honours the mode (valgrind: it does not) */

static void check_mode(int m)
{
    ASSERT_EQ(fegetround(), modes[m]);
    if (modes_apply)
        ASSERT(third() == expect_third[m]);
#if defined(__x86_64__)
    /* the SSE rounding field agrees with the x87 one */
    static const unsigned rc[4] = { 0, 2, 1, 3 };
    ASSERT_EQ((_mm_getcsr() >> 13) & 3, rc[m]);
#endif
}

static long rounds;

static void *worker_co(void *arg)
{
    int m = (int)(intptr_t)arg;
    ASSERT_EQ(fesetround(modes[m]), 0);
    for (long i = 0; i < rounds; i++) {
        check_mode(m);
        may_yield();
        check_mode(m);
        if (i % 16 == 0) {
            ASSERT_EQ(may_sleep(1000), 0); /* park: may move */
            check_mode(m);
        }
    }
    fesetround(FE_TONEAREST);
    return NULL;
}

static void *gen_body(may_gen_t *g, void *arg)
{
    (void)arg;
    ASSERT_EQ(fesetround(FE_DOWNWARD), 0);
    for (int i = 0; i < 100; i++) {
        may_gen_yield(g, NULL);
        check_mode(2);
    }
    return NULL;
}

static void check_generator(int mine)
{
    may_gen_t *g;
    ASSERT_EQ(may_gen_new(&g, gen_body, NULL, 0), 0);
    void *v;
    while (may_gen_resume(g, &v) == 1)
        check_mode(mine);
    may_gen_free(g);
}

static void *gen_in_co(void *arg)
{
    (void)arg;
    ASSERT_EQ(fesetround(FE_UPWARD), 0);
    check_generator(1);
    fesetround(FE_TONEAREST);
    return NULL;
}

int main(void)
{
    for (int m = 0; m < 4; m++) {
        ASSERT_EQ(fesetround(modes[m]), 0);
        expect_third[m] = third();
    }
    ASSERT_EQ(fesetround(FE_TONEAREST), 0);
    /* valgrind computes in round-to-nearest whatever the mode says, but
     * keeps the control words themselves: then only those are checked */
    modes_apply = expect_third[1] != expect_third[2];
    if (!modes_apply)
        printf("note: rounding modes do not change arithmetic here; checking the modes only\n");

    /* One worker: coroutines in four modes take turns on one thread. */
    rounds = test_scale(20000);
    if (rounds < 200)
        rounds = 200;
    enum { PER_MODE = 4 };
    may_co_t *cs[4 * PER_MODE];
    may_spawn_opts_t pin = { .flags = MAY_SPAWN_PINNED, .worker = 0 };
    for (int i = 0; i < 4 * PER_MODE; i++)
        ASSERT_EQ(may_spawn(&cs[i], worker_co, (void *)(intptr_t)(i % 4), &pin), 0);
    for (int i = 0; i < 4 * PER_MODE; i++)
        ASSERT_EQ(may_join(cs[i], NULL, MAY_FOREVER), MAY_DONE);

    /* Any worker: the same, free to move between threads. */
    for (int i = 0; i < 4 * PER_MODE; i++)
        ASSERT_EQ(may_spawn(&cs[i], worker_co, (void *)(intptr_t)(i % 4), NULL), 0);
    for (int i = 0; i < 4 * PER_MODE; i++)
        ASSERT_EQ(may_join(cs[i], NULL, MAY_FOREVER), MAY_DONE);

    /* Generators, from a plain thread and from a coroutine. */
    check_generator(0);
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, gen_in_co, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);

    check_mode(0); /* the main thread kept its own */
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
