/* The program tests/gdb/run.sh debugs: coroutines parked in known places
 * (a channel receive, a sleep, a mutex), then a call to gdb_target_ready()
 * on which gdb stops.  Run alone, it just exits: it is also a plain test. */
#include "../test.h"

#include <unistd.h>

static may_chan_t *ch;
static may_mutex_t *mu;
static atomic_int parked;

__attribute__((noinline)) void *gdb_recv_fn(void *arg)
{
    (void)arg;
    int v = 0;
    atomic_fetch_add(&parked, 1);
    int r = may_chan_recv(ch, &v, MAY_FOREVER);
    __asm__ volatile("" ::: "memory"); /* keep the frame: no tail call */
    return (void *)(intptr_t)(r == 0 ? v : r);
}

__attribute__((noinline)) void *gdb_sleep_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&parked, 1);
    int r = may_sleep(60LL * 1000000000);
    __asm__ volatile("" ::: "memory");
    return (void *)(intptr_t)r;
}

__attribute__((noinline)) void *gdb_lock_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&parked, 1);
    int r = may_mutex_lock(mu, MAY_FOREVER);
    if (r == 0)
        may_mutex_unlock(mu);
    __asm__ volatile("" ::: "memory");
    return (void *)(intptr_t)r;
}

/* gdb breaks here. */
__attribute__((noinline)) void gdb_target_ready(void)
{
    __asm__ volatile("" ::: "memory");
}

int main(void)
{
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2 }), 0);
    ASSERT_EQ(may_chan_make(&ch, int, 0), 0);
    ASSERT_EQ(may_mutex_new(&mu), 0);
    ASSERT_EQ(may_mutex_lock(mu, MAY_FOREVER), 0);
    may_co_t *r, *s, *l;
    ASSERT_EQ(may_spawn(&r, gdb_recv_fn, NULL, &(may_spawn_opts_t){ .name = "receiver" }), 0);
    ASSERT_EQ(may_spawn(&s, gdb_sleep_fn, NULL, &(may_spawn_opts_t){ .name = "sleeper" }), 0);
    ASSERT_EQ(may_spawn(&l, gdb_lock_fn, NULL, &(may_spawn_opts_t){ .name = "locker" }), 0);
    for (int i = 0;; i++) {
        may_stats_t st;
        may_stats(&st);
        if (atomic_load(&parked) == 3 && st.parked == 3 && st.running == 0)
            break;
        ASSERT_LT(i, 10000);
        usleep(1000);
    }
    gdb_target_ready();
    int v = 42;
    ASSERT_EQ(may_chan_send(ch, &v, MAY_FOREVER), 0);
    ASSERT_EQ(may_cancel(s), 0);
    ASSERT_EQ(may_mutex_unlock(mu), 0);
    void *res;
    ASSERT_EQ(may_join(r, &res, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)res, 42);
    ASSERT_EQ(may_join(s, NULL, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ(may_join(l, NULL, MAY_FOREVER), MAY_DONE);
    may_chan_free(ch);
    may_mutex_free(mu);
    ASSERT_EQ(may_shutdown(), 0);
    printf("gdb_coroutines: done\n");
    return 0;
}
