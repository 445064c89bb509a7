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
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *vals)
{
    may__cls_run_destructors(vals);
    free(vals);
    thread_vals = NULL;
}

static void make_thread_key(void)
{
    pthread_key_create(&thread_key, thread_exit);
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

static void **vals_of_caller(int create)
{
    may_co_t *co = may__cur_co();
    if (co) {
        if (!co->cls && create)
            co->cls = calloc(MAY_KEYS_MAX, sizeof(void *));
        return co->cls;
    }
    if (!thread_vals && create) {
        pthread_once(&thread_key_once, make_thread_key);
        thread_vals = calloc(MAY_KEYS_MAX, sizeof(void *));
        if (thread_vals)
            pthread_setspecific(thread_key, thread_vals);
    }
    return thread_vals;
}

void *may_getspecific(may_key_t key)
{
    if (key >= MAY_KEYS_MAX)
        return NULL;
    void **v = vals_of_caller(0);
    return v ? v[key] : NULL;
}

int may_setspecific(may_key_t key, const void *value)
{
    if (key >= MAY_KEYS_MAX || !atomic_load(&keys[key].used))
        return -EINVAL;
    void **v = vals_of_caller(1);
    if (!v)
        return -ENOMEM;
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
