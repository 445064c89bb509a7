/*
 * cls.c - coroutine-local storage.
 *
 * Keys are indices into a global table of destructors (MAY_KEYS_MAX of
 * them).  Each coroutine gets its own value array, allocated on its first
 * may_setspecific, so coroutines that never use CLS pay nothing; it starts
 * all NULL and its destructors run when the coroutine ends.  Called from a
 * plain thread the same calls use a per-thread array, whose destructors run
 * at thread exit (through one pthread key), so code written against these
 * calls behaves the same in both worlds.
 *
 * A key's generation is bumped when it is deleted, so a value set under a
 * deleted key is never passed to a later key's destructor.
 */
#include "internal.h"

#include <string.h>

static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    _Atomic int used;
    void (*_Atomic dtor)(void *);
} keys[MAY_KEYS_MAX];

static __thread void **thread_vals;
static pthread_key_t thread_key;   /* valid once thread_key_made is 1 */
static _Atomic int thread_key_made;

static void thread_exit(void *vals)
{
    may__cls_run_destructors(vals);
    free(vals);
    thread_vals = NULL;
}

/* Make the pthread key whose destructor frees a thread's values, once.
 * 0, or -errno of pthread_key_create (EAGAIN, ENOMEM): then nothing is set
 * (a key that was never made must not be used: it could be somebody
 * else's), and the next call tries again. */
static int thread_key_get(void)
{
    /* acquire: pairs with the release store below (thread_key is written) */
    if (atomic_load_explicit(&thread_key_made, memory_order_acquire))
        return 0;
    int e = 0;
    pthread_mutex_lock(&key_lock);
    if (!atomic_load_explicit(&thread_key_made, memory_order_relaxed)) {
        e = pthread_key_create(&thread_key, thread_exit);
        if (e == 0)
            atomic_store_explicit(&thread_key_made, 1, memory_order_release);
    }
    pthread_mutex_unlock(&key_lock);
    return -e;
}

int may_key_create(may_key_t *key, void (*destructor)(void *))
{
    if (!key)
        return -EINVAL;
    pthread_mutex_lock(&key_lock);
    for (unsigned i = 0; i < MAY_KEYS_MAX; i++) {
        if (!atomic_load(&keys[i].used)) {
            atomic_store(&keys[i].dtor, destructor);
            atomic_store(&keys[i].used, 1);
            pthread_mutex_unlock(&key_lock);
            *key = i;
            return 0;
        }
    }
    pthread_mutex_unlock(&key_lock);
    return -EAGAIN;
}

int may_key_delete(may_key_t key)
{
    if (key >= MAY_KEYS_MAX || !atomic_load(&keys[key].used))
        return -EINVAL;
    atomic_store(&keys[key].dtor, NULL);
    atomic_store(&keys[key].used, 0);
    return 0;
}

static void **vals_of_caller(void)
{
    may_co_t *co = may__cur_co();
    return co ? co->cls : thread_vals;
}

/* Make the caller's value array (it has none).  0 with *out set, or
 * -ENOMEM, or -errno of the pthread key calls. */
static int vals_make(void ***out)
{
    void **v = calloc(MAY_KEYS_MAX, sizeof(void *));
    if (!v)
        return -ENOMEM;
    may_co_t *co = may__cur_co();
    if (co) {
        co->cls = v;
    } else {
        /* a thread's array is freed by the key's destructor at its exit:
         * without the key it would leak */
        int r = thread_key_get();
        if (r == 0)
            r = -pthread_setspecific(thread_key, v);
        if (r < 0) {
            free(v);
            return r;
        }
        thread_vals = v;
    }
    *out = v;
    return 0;
}

void *may_getspecific(may_key_t key)
{
    if (key >= MAY_KEYS_MAX)
        return NULL;
    void **v = vals_of_caller();
    return v ? v[key] : NULL;
}

int may_setspecific(may_key_t key, const void *value)
{
    if (key >= MAY_KEYS_MAX || !atomic_load(&keys[key].used))
        return -EINVAL;
    void **v = vals_of_caller();
    if (!v) {
        if (!value)
            return 0; /* every slot of a missing array is NULL already */
        int r = vals_make(&v);
        if (r < 0)
            return r;
    }
    v[key] = (void *)value;
    return 0;
}

void may__cls_run_destructors(void **vals)
{
    /* Like pthreads: a destructor may set values again; retry a few times. */
    for (int round = 0; round < 4; round++) {
        int again = 0;
        for (unsigned i = 0; i < MAY_KEYS_MAX; i++) {
            void *x = vals[i];
            if (!x)
                continue;
            vals[i] = NULL;
            void (*d)(void *) = atomic_load(&keys[i].dtor);
            if (d && atomic_load(&keys[i].used)) {
                d(x);
                again = 1;
            }
        }
        if (!again)
            return;
    }
}
