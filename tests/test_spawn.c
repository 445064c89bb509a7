/* Spawn and join with results, from a plain thread and from coroutines;
 * options (name, stack size, worker); detach; short form; bad input. */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

static void *add_one(void *arg) { return (void *)((intptr_t)arg + 1); }

static void *named(void *arg)
{
    (void)arg;
    ASSERT(may_in_coroutine());
    ASSERT(strcmp(may_co_name(may_self()), "worker-7") == 0);
    ASSERT_GT(may_co_id(may_self()), 0);
    return (void *)42;
}

static void *big_stack(void *arg)
{
    (void)arg;
    volatile char buf[400 * 1024];
    memset((char *)buf, 1, sizeof buf);
    return (void *)(intptr_t)buf[1234];
}

static _Atomic int detached_ran;
static void *detached(void *arg)
{
    (void)arg;
    atomic_fetch_add(&detached_ran, 1);
    return NULL;
}

static void *spawner(void *arg)
{
    long n = (long)(intptr_t)arg;
    long sum = 0;
    for (long i = 0; i < n; i++) {
        may_co_t *c;
        ASSERT_EQ(may_spawn(&c, add_one, (void *)(intptr_t)i, NULL), 0);
        void *r;
        ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
        sum += (intptr_t)r;
    }
    return (void *)(intptr_t)sum;
}

static void *self_join(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)may_join(may_self(), NULL, MAY_FOREVER);
}

static void *from_thread(void *arg)
{
    (void)arg;
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, add_one, (void *)100, NULL), 0);
    void *r;
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, 101);
    return NULL;
}

int main(void)
{
    ASSERT(!may_in_coroutine());
    ASSERT(may_self() == NULL);
    ASSERT_EQ(may_worker_id(), -1);

    may_co_t *c;
    void *r;
    ASSERT_EQ(may_spawn(&c, add_one, (void *)1, NULL), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, 2);

    may_spawn_opts_t o = { .name = "worker-7" };
    ASSERT_EQ(may_spawn(&c, named, NULL, &o), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, 42);

    may_spawn_opts_t big = { .stack_size = 1 << 20 };
    ASSERT_EQ(may_spawn(&c, big_stack, NULL, &big), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, 1);

    long n = test_scale(10000);
    ASSERT_EQ(may_spawn(&c, spawner, (void *)(intptr_t)n, NULL), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, n * (n + 1) / 2);

    for (int i = 0; i < 100; i++)
        ASSERT_EQ(may_go(detached, NULL), 0);
    may_spawn_opts_t d = { .flags = MAY_SPAWN_DETACHED };
    ASSERT_EQ(may_spawn(NULL, detached, NULL, &d), 0);
    ASSERT_EQ(may_spawn(&c, add_one, NULL, NULL), 0);
    ASSERT_EQ(may_detach(c), 0);
    for (int i = 0; i < 5000 && atomic_load(&detached_ran) < 101; i++)
        usleep(1000);
    ASSERT_EQ(atomic_load(&detached_ran), 101);

    ASSERT_EQ(may_spawn(&c, self_join, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, -EDEADLK);

    /* every worker, by preference */
    for (int wk = 0; wk < may_workers(); wk++) {
        may_spawn_opts_t wo = { .flags = MAY_SPAWN_PINNED, .worker = wk };
        ASSERT_EQ(may_spawn(&c, add_one, (void *)(intptr_t)wk, &wo), 0);
        ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ((intptr_t)r, wk + 1);
    }

    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, from_thread, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);

    /* bad input */
    ASSERT_EQ(may_spawn(&c, NULL, NULL, NULL), -EINVAL);
    ASSERT_EQ(may_spawn(NULL, add_one, NULL, NULL), -EINVAL);
    may_spawn_opts_t bad = { .stack_size = 100 };
    ASSERT_EQ(may_spawn(&c, add_one, NULL, &bad), -EINVAL);
    may_spawn_opts_t badw = { .flags = MAY_SPAWN_WORKER, .worker = 9999 };
    ASSERT_EQ(may_spawn(&c, add_one, NULL, &badw), -EINVAL);
    ASSERT_EQ(may_join(NULL, NULL, MAY_FOREVER), -EINVAL);
    ASSERT_EQ(may_detach(NULL), -EINVAL);
    ASSERT_EQ(may_cancel(NULL), -EINVAL);
    may_config_t cfg = { .workers = 2 };
    ASSERT_EQ(may_configure(&cfg), -EBUSY);

    ASSERT_EQ(may_shutdown(), 0);
    /* restarts lazily */
    ASSERT_EQ(may_spawn(&c, add_one, (void *)5, NULL), 0);
    ASSERT_EQ(may_join(c, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, 6);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
