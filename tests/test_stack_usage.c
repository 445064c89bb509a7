/* Stack-use tracking (may_configure .track_stack for every coroutine,
 * MAY_SPAWN_TRACK_STACK for one): a coroutine's peak stack use is recorded
 * and returned by may_co_stack_used; without tracking the call says
 * -ENOTSUP. */
#include "test.h"
#include <errno.h>

static void *use_stack(void *arg)
{
    (void)arg;
    volatile char buf[24 * 1024];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)i;
    return (void *)(intptr_t)buf[100];
}

/* Asks about itself while its frames are live (ASan must not object). */
static void *self_measure(void *arg)
{
    (void)arg;
    volatile char buf[20 * 1024];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)i;
    long used = may_co_stack_used(may_self());
    return (void *)(intptr_t)(used + buf[7] - 7);
}

static void *use_little(void *arg)
{
    return arg;
}

int main(void)
{
    may_config_t cfg = { .track_stack = true };
    ASSERT_EQ(may_configure(&cfg), 0);
    may_co_t *small, *big;
    ASSERT_EQ(may_spawn(&small, use_little, NULL, NULL), 0);
    ASSERT_EQ(may_spawn(&big, use_stack, NULL, NULL), 0);
    /* wait for both to end, then read their peaks before joining */
    may_stats_t st;
    do {
        may_sleep(TEST_MS(1));
        may_stats(&st);
    } while (st.alive);
    long s = may_co_stack_used(small), b = may_co_stack_used(big);
    printf("peak stack use: small %ld bytes, big %ld bytes\n", s, b);
    ASSERT_GE(b, 24 * 1024);
    ASSERT_LT(s, b);
    ASSERT_EQ(may_join(small, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(big, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_co_stack_used(NULL), -EINVAL);
    ASSERT_EQ(may_shutdown(), 0);
    cfg.track_stack = false;
    ASSERT_EQ(may_configure(&cfg), 0);
    ASSERT_EQ(may_spawn(&small, use_little, NULL, NULL), 0);
    ASSERT_EQ(may_co_stack_used(small), -ENOTSUP);
    /* per coroutine: only the one spawned with the flag is tracked */
    ASSERT_EQ(may_spawn(&big, use_stack, NULL,
                        &(may_spawn_opts_t){ .flags = MAY_SPAWN_TRACK_STACK, .name = "tracked" }),
              0);
    ASSERT_EQ(may_join(small, NULL, MAY_FOREVER), MAY_DONE);
    do {
        may_sleep(TEST_MS(1));
        may_stats(&st);
    } while (st.alive);
    b = may_co_stack_used(big);
    printf("per-coroutine tracking: %ld bytes\n", b);
    ASSERT_GE(b, 24 * 1024);
    ASSERT_LT(b, 64 * 1024);
    ASSERT_EQ(may_join(big, NULL, MAY_FOREVER), MAY_DONE);
    void *r;
    ASSERT_EQ(may_spawn(&big, self_measure, NULL,
                        &(may_spawn_opts_t){ .flags = MAY_SPAWN_TRACK_STACK }), 0);
    ASSERT_EQ(may_join(big, &r, MAY_FOREVER), MAY_DONE);
    printf("measured by itself: %ld bytes\n", (long)(intptr_t)r);
    ASSERT_GE((long)(intptr_t)r, 20 * 1024);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
