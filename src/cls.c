/*
 * cls.c - coroutine-local storage.
 *
 * Keys are indices into a global table of MAY_KEYS_MAX slots.  Each
 * coroutine gets its own value array, allocated on its first
 * may_setspecific, so coroutines that never use CLS pay nothing; it starts
 * all NULL and its destructors run when the coroutine ends.  Called from a
 * plain thread the same calls use a per-thread array, whose destructors run
 * at thread exit (through one pthread key), so code written against these
 * calls behaves the same in both worlds.
 *
 * Generations.  A key slot is reused: may_key_delete frees it and a later
 * may_key_create may hand out the same index.  Values set under the old key
 * are still in the arrays of live coroutines and threads (nothing could
 * visit them all), and they must neither be read through the new key nor be
 * passed to its destructor (pthreads gives the same guarantee).  So each
 * slot of the table counts its generation: odd while the key is in use,
 * even while it is free; create and delete each add one.  A value is stored
 * with the generation it was set under, and counts only while that is still
 * the slot's generation: may_getspecific compares the two (two loads and a
 * compare more than a plain array read), and the destructor pass skips a
 * stale value (its key was deleted: pthreads likewise calls no destructor
 * for a deleted key).  A 64-bit generation does not wrap.
 *
 * A key deleted, or deleted and made again, while a coroutine ends on
 * another worker: the ending coroutine must call the destructor of the key
 * its value was set under, or none, never the new key's.  The destructor
 * pointer and the generation are two words, so the pass reads them like a
 * seqlock (generation, destructor, generation again) and trusts the pointer
 * only if both reads of the generation are the value's own; see
 * dtor_of().  Calling the old key's destructor while may_key_delete returns
 * in another thread is the caller's race, as with pthread_key_delete.
 *
 * Lock order: key_lock (rank KEY, src/lockrank.h) is a leaf; only the fork
 * handlers (src/fork.c) take it under another.  It serialises create and
 * delete (the only writers of the table) and the one-time pthread key;
 * get, set and the destructor pass take no lock.
 */
#include "internal.h"

#include <string.h>

/* One value of a coroutine's or thread's array: the value and the
 * generation of its key when it was set. */
struct may__cls_slot {
    void *val;
    uint64_t gen;
};

static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    _Atomic uint64_t gen;          /* odd: in use; written under key_lock */
    void (*_Atomic dtor)(void *);  /* written under key_lock */
} keys[MAY_KEYS_MAX];

static __thread struct may__cls_slot *thread_vals;
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
    may__lock(&key_lock, MAY__RANK_KEY);
    if (!atomic_load_explicit(&thread_key_made, memory_order_relaxed)) {
        e = pthread_key_create(&thread_key, thread_exit);
        if (e == 0)
            atomic_store_explicit(&thread_key_made, 1, memory_order_release);
    }
    may__unlock(&key_lock, MAY__RANK_KEY);
    return -e;
}

int may_key_create(may_key_t *key, void (*destructor)(void *))
{
    if (!key)
        return -EINVAL;
    may__lock(&key_lock, MAY__RANK_KEY);
    for (unsigned i = 0; i < MAY_KEYS_MAX; i++) {
        uint64_t g = atomic_load_explicit(&keys[i].gen, memory_order_relaxed);
        if (!(g & 1)) {
            /* release: pairs with the acquire fence in dtor_of; a pass that
             * reads this destructor then sees the delete that freed the
             * slot (it happened before, through key_lock) in its second
             * look at the generation */
            atomic_store_explicit(&keys[i].dtor, destructor, memory_order_release);
            /* release: a destructor pass that reads the new generation
             * (acquire, in dtor_of) reads this destructor, not an older one */
            atomic_store_explicit(&keys[i].gen, g + 1, memory_order_release);
            may__unlock(&key_lock, MAY__RANK_KEY);
            *key = i;
            return 0;
        }
    }
    may__unlock(&key_lock, MAY__RANK_KEY);
    return -EAGAIN;
}

int may_key_delete(may_key_t key)
{
    if (key >= MAY_KEYS_MAX)
        return -EINVAL;
    may__lock(&key_lock, MAY__RANK_KEY);
    uint64_t g = atomic_load_explicit(&keys[key].gen, memory_order_relaxed);
    if (!(g & 1)) {
        may__unlock(&key_lock, MAY__RANK_KEY);
        return -EINVAL;
    }
    atomic_store_explicit(&keys[key].gen, g + 1, memory_order_relaxed);
    /* release: pairs with the acquire fence in dtor_of; a pass that reads
     * this NULL reads g + 1 or later on its second look at the generation */
    atomic_store_explicit(&keys[key].dtor, NULL, memory_order_release);
    may__unlock(&key_lock, MAY__RANK_KEY);
    return 0;
}

void may__cls_hold(int on)
{
    if (on)
        may__lock(&key_lock, MAY__RANK_KEY);
    else
        may__unlock(&key_lock, MAY__RANK_KEY);
}

/* The destructor of key i if its generation is still gen, else NULL.  A
 * seqlock read: the generation (acquire: pairs with the release store of
 * the generation in may_key_create, so the destructor read next is gen's
 * or a later one), the destructor, an acquire fence (pairs with the release
 * store of whatever destructor was read: NULL by a delete, or a later
 * key's by a create, which came after a delete through key_lock; either
 * way that delete's new generation is visible from here on), the
 * generation again.  Still gen: the pointer read is gen's own (a later
 * one would have made the second read differ).  A delete racing with the
 * pass may still see gen's destructor called once it has returned: the
 * caller's race, as with pthread_key_delete. */
static void (*dtor_of(unsigned i, uint64_t gen))(void *)
{
    if (atomic_load_explicit(&keys[i].gen, memory_order_acquire) != gen)
        return NULL;
    void (*d)(void *) = atomic_load_explicit(&keys[i].dtor, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&keys[i].gen, memory_order_relaxed) != gen)
        return NULL;
    return d;
}

static struct may__cls_slot *vals_of_caller(void)
{
    may_co_t *co = may__cur_co();
    return co ? co->cls : thread_vals;
}

/* Make the caller's value array (it has none).  0 with *out set, or
 * -ENOMEM, or -errno of the pthread key calls. */
static int vals_make(struct may__cls_slot **out)
{
    struct may__cls_slot *v = calloc(MAY_KEYS_MAX, sizeof *v);
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
    struct may__cls_slot *v = vals_of_caller();
    if (!v)
        return NULL;
    /* relaxed: the caller set the value itself; a delete in another thread
     * that matters to it is ordered before this call by the caller's own
     * synchronisation (as for pthread_getspecific) */
    uint64_t g = atomic_load_explicit(&keys[key].gen, memory_order_relaxed);
    return v[key].gen == g ? v[key].val : NULL;
}

int may_setspecific(may_key_t key, const void *value)
{
    if (key >= MAY_KEYS_MAX)
        return -EINVAL;
    /* relaxed: see may_getspecific */
    uint64_t g = atomic_load_explicit(&keys[key].gen, memory_order_relaxed);
    if (!(g & 1))
        return -EINVAL;
    struct may__cls_slot *v = vals_of_caller();
    if (!v) {
        if (!value)
            return 0; /* every slot of a missing array is NULL already */
        int r = vals_make(&v);
        if (r < 0)
            return r;
    }
    v[key].val = (void *)value;
    v[key].gen = g;
    return 0;
}

void may__cls_run_destructors(struct may__cls_slot *vals)
{
    /* Like pthreads: a destructor may set values again; retry a few times.
     * A value of a deleted key is dropped without a destructor. */
    for (int round = 0; round < 4; round++) {
        int again = 0;
        for (unsigned i = 0; i < MAY_KEYS_MAX; i++) {
            void *x = vals[i].val;
            if (!x)
                continue;
            vals[i].val = NULL;
            void (*d)(void *) = dtor_of(i, vals[i].gen);
            if (d) {
                d(x);
                again = 1;
            }
        }
        if (!again)
            return;
    }
}
