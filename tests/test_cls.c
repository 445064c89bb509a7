/* Coroutine-local storage: fresh per coroutine, isolated across coroutines
 * and threads, destructors at the end. */
#include "test.h"
#include <errno.h>
#include <pthread.h>

static may_key_t key;
static _Atomic int destroyed;
static void dtor(void *v)
{
    ASSERT(v != NULL);
    atomic_fetch_add(&destroyed, 1);
    free(v);
}

static void *user(void *arg)
{
    intptr_t id = (intptr_t)arg;
    ASSERT(may_getspecific(key) == NULL); /* fresh */
    int *v = malloc(sizeof *v);
    *v = (int)id;
    ASSERT_EQ(may_setspecific(key, v), 0);
    for (int i = 0; i < 50; i++) {
        may_yield();
        ASSERT_EQ(*(int *)may_getspecific(key), id);
    }
    return NULL;
}

static void *thread_user(void *arg)
{
    intptr_t id = (intptr_t)arg;
    ASSERT(may_getspecific(key) == NULL);
    int *v = malloc(sizeof *v);
    *v = (int)id;
    ASSERT_EQ(may_setspecific(key, v), 0);
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, user, (void *)(id + 1000), NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(*(int *)may_getspecific(key), id); /* untouched by the coroutine */
    return NULL;
}

int main(void)
{
    ASSERT_EQ(may_key_create(&key, dtor), 0);
    may_co_t *cs[64];
    for (int i = 0; i < 64; i++)
        ASSERT_EQ(may_spawn(&cs[i], user, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < 64; i++)
        ASSERT_EQ(may_join(cs[i], NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(atomic_load(&destroyed), 64);

    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, thread_user, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    /* 4 coroutines + 4 threads (at thread exit) */
    ASSERT_EQ(atomic_load(&destroyed), 72);

    ASSERT_EQ(may_setspecific(MAY_KEYS_MAX, NULL), -EINVAL);
    ASSERT_EQ(may_key_delete(key), 0);
    ASSERT_EQ(may_key_delete(key), -EINVAL);
    ASSERT_EQ(may_setspecific(key, NULL), -EINVAL);
    ASSERT_EQ(may_key_create(NULL, NULL), -EINVAL);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
