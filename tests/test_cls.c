/* Coroutine-local storage: fresh per coroutine, isolated across coroutines
 * and threads, destructors at the end; a key deleted and made again in the
 * same slot neither reads nor destroys the values set under the old one. */
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

/* Key reuse.  Two coroutines and two plain threads set a value under
 * old_key and stay alive while main deletes it and makes new_key, which
 * takes the same slot.  Then the new key must read NULL in all four; the
 * old values must reach no destructor (their key was deleted), neither the
 * two left in place nor the two overwritten; and a value set under the new
 * key reaches the new destructor, once. */
enum { SIDES = 4 }; /* 0, 1: coroutines; 2, 3: threads; odd ones set new_key */
static may_key_t old_key, new_key;
static may_event_t *set_ev[SIDES], *go_ev;
static int old_val[SIDES], new_val[SIDES];
static _Atomic int old_dtor_calls, new_dtor_calls, new_dtor_bad;

static void old_dtor(void *v)
{
    (void)v;
    atomic_fetch_add(&old_dtor_calls, 1);
}

static void new_dtor(void *v)
{
    atomic_fetch_add(&new_dtor_calls, 1);
    if (v != &new_val[1] && v != &new_val[3])
        atomic_fetch_add(&new_dtor_bad, 1); /* an old value, or garbage */
}

static void *reuse_side(void *arg)
{
    int i = (int)(intptr_t)arg;
    ASSERT_EQ(may_setspecific(old_key, &old_val[i]), 0);
    ASSERT_PTR_EQ(may_getspecific(old_key), &old_val[i]);
    ASSERT_EQ(may_event_fire(set_ev[i]), 0);
    ASSERT_EQ(may_event_wait(go_ev, MAY_FOREVER), 0);
    /* old_key was deleted and new_key made in its slot meanwhile */
    ASSERT_EQ(new_key, old_key);
    ASSERT(may_getspecific(new_key) == NULL);
    if (i & 1) {
        ASSERT_EQ(may_setspecific(new_key, &new_val[i]), 0);
        ASSERT_PTR_EQ(may_getspecific(new_key), &new_val[i]);
    }
    return NULL; /* the destructors run as the coroutine or thread ends */
}

static void check_key_reuse(void)
{
    for (int i = 0; i < SIDES; i++)
        ASSERT_EQ(may_event_new(&set_ev[i]), 0);
    ASSERT_EQ(may_event_new(&go_ev), 0);
    ASSERT_EQ(may_key_create(&old_key, old_dtor), 0);
    may_co_t *c[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(may_spawn(&c[i], reuse_side, (void *)(intptr_t)i, NULL), 0);
        ASSERT_EQ(pthread_create(&t[i], NULL, reuse_side, (void *)(intptr_t)(2 + i)), 0);
    }
    for (int i = 0; i < SIDES; i++)
        ASSERT_EQ(may_event_wait(set_ev[i], MAY_FOREVER), 0);
    ASSERT_EQ(may_key_delete(old_key), 0);
    ASSERT_EQ(may_key_create(&new_key, new_dtor), 0); /* the lowest free slot */
    ASSERT_EQ(may_event_fire(go_ev), 0);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
    }
    ASSERT_EQ(atomic_load(&old_dtor_calls), 0);
    ASSERT_EQ(atomic_load(&new_dtor_bad), 0);
    ASSERT_EQ(atomic_load(&new_dtor_calls), 2);
    ASSERT_EQ(may_key_delete(new_key), 0);
    for (int i = 0; i < SIDES; i++)
        may_event_free(set_ev[i]);
    may_event_free(go_ev);
}

int main(void)
{
    check_key_reuse();
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
