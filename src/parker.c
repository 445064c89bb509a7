/*
 * parker.c - the one way anything blocks: park until a flag is set.
 *
 * A coroutine's parker lives in its control block, a plain thread's in a
 * thread-local.  The state is one 32-bit word (flags in internal.h):
 *
 *   state                     meaning
 *   0                         running, nothing pending
 *   PARKED                    asleep; the next waker must resume it
 *   UTOKEN / WTOKEN           a wake-up is pending (user / internal)
 *   TIMEOUT                   the armed deadline of the current wait passed
 *   CANCEL                    cancelled, for good
 *
 * A waiter loops: if a flag in its mask is set it consumes it and returns;
 * otherwise it commits PARKED with a CAS against the exact word it checked,
 * so a flag set in between makes the CAS fail and the loop run again.  A
 * waker sets its flag and, if PARKED was set, clears it in the same CAS and
 * resumes the owner: exactly one waker resumes a parked owner.  A wake with a
 * flag outside the waiter's mask (a user token during a join) resumes it, it
 * finds nothing for itself and parks again, and the flag stays for later.
 *
 * For coroutines the PARKED commit happens in a hook after the switch (see
 * sched.c), so the coroutine's context is saved before anyone can resume
 * it.  For threads PARKED is committed before futex_wait, whose compare
 * against the word closes the race.
 *
 * Priority when several flags are set: CANCEL, then the token, then TIMEOUT.
 *
 * Memory ordering: acq_rel on every CAS; a waker's writes before may__wake
 * are visible to the waiter once it sees the flag.
 */
#include "internal.h"

#include "plat.h"

static __thread may__parker thread_parker;

MAY_HOT_INLINE may__parker *may__self_parker(void)
{
    may_co_t *co = may__cur_co();
    return co ? &co->parker : &thread_parker;
}

MAY_HOT_INLINE void may__wait_prepare(may__parker *p)
{
    /* usually there is nothing to clear: skip the locked instruction */
    if (atomic_load_explicit(&p->word, memory_order_relaxed) & MAY__P_WTOKEN)
        atomic_fetch_and_explicit(&p->word, ~(uint32_t)MAY__P_WTOKEN, memory_order_acq_rel);
}

/* Everything this reads from *p it reads before the CAS.  Until the CAS,
 * the waiter cannot leave its wait: it returns only once it has consumed a
 * flag in its mask, and a waiter that gives up (timeout, cancellation)
 * and finds its waker already committed waits for this very wake before it
 * returns (the protocol of every wait queue, see docs/ARCHITECTURE.md).
 * The CAS publishes the flag, and from then on the waiter may see it, run,
 * return from its wait and reuse or free the memory that holds p: a
 * coroutine's parker lives in its control block, which a join frees; a
 * thread's parker is a thread-local, gone when the thread exits.  So p->co
 * (written once when the parker is made, never changed) is read first.
 * After the CAS only the futex wake touches p, and that only by address: a
 * futex wake on memory that was freed or reused at worst wakes an unrelated
 * futex waiter spuriously (every futex waiter re-checks its word) or fails
 * with EFAULT; it never writes the memory. */
void may__wake(may__parker *p, uint32_t flag)
{
    struct may_co *co = p->co;
    uint32_t v = atomic_load_explicit(&p->word, memory_order_relaxed);
    uint32_t nv;
    do {
        nv = (v | flag) & ~(uint32_t)MAY__P_PARKED;
    } while (!atomic_compare_exchange_weak_explicit(&p->word, &v, nv, memory_order_acq_rel,
                                                    memory_order_relaxed));
    if (!(v & MAY__P_PARKED))
        return;
    /* We cleared PARKED, so the owner is asleep until we resume it: a
     * coroutine stays off every queue (and its control block alive) until
     * may__ready_ex queues it; a thread may wake spuriously, but nothing of
     * it is read here any more. */
    if (co)
        may__ready_ex(co, flag != MAY__P_TIMEOUT);
    else
        may__futex_wake(&p->word, 1);
}

/* What a wait with this mask returns for word v, or 1 to keep waiting. */
static int consume(may__parker *p, uint32_t v, uint32_t mask)
{
    uint32_t hit = v & mask;
    if (hit & MAY__P_CANCEL)
        return -ECANCELED;
    uint32_t tok = hit & (MAY__P_UTOKEN | MAY__P_WTOKEN);
    if (tok) {
        atomic_fetch_and_explicit(&p->word, ~tok, memory_order_acq_rel);
        return 0;
    }
    if (hit & MAY__P_TIMEOUT)
        return -ETIMEDOUT;
    return 1;
}

static void commit_park_hook(may__worker *w, struct may_co *co)
{
    (void)w;
    may__parker *p = &co->parker;
    uint32_t mask = co->park_mask; /* set by park_co before the switch */
    uint32_t v = atomic_load_explicit(&p->word, memory_order_acquire);
    for (;;) {
        if (v & mask) {
            may__ready(co); /* a wake came in before we slept */
            return;
        }
        if (atomic_compare_exchange_weak_explicit(&p->word, &v, v | MAY__P_PARKED,
                                                  memory_order_acq_rel, memory_order_acquire))
            return;
    }
}

static MAY_HOT_INLINE int park_co(struct may_co *co, uint32_t mask, int64_t deadline)
{
    may__parker *p = &co->parker;
    int armed = 0, yielded = 0;
    int r;
    if (deadline >= 0)
        mask |= MAY__P_TIMEOUT;
    for (;;) {
        uint32_t v = atomic_load_explicit(&p->word, memory_order_acquire);
        r = consume(p, v, mask);
        if (r <= 0)
            break;
        if (deadline == 0) {
            r = -ETIMEDOUT;
            break;
        }
        if (deadline > 0 && !armed) {
            if (deadline <= may__now()) {
                /* A deadline already past (unlike MAY_NOWAIT) still lets
                 * others run once, so a retry loop with an expired deadline
                 * cannot starve the coroutine it waits for. */
                if (!yielded) {
                    yielded = 1;
                    may_yield();
                    continue; /* a wake may have come meanwhile */
                }
                r = -ETIMEDOUT;
                break;
            }
            may__timer_arm(co, deadline);
            armed = 1;
        }
        co->park_mask = mask;
        may__switch_out(may__cur_worker(), (may__hook){ commit_park_hook, co });
    }
    if (armed)
        may__timer_disarm(co);
    if (deadline > 0)
        atomic_fetch_and_explicit(&p->word, ~(uint32_t)MAY__P_TIMEOUT, memory_order_acq_rel);
    return r;
}

static int park_thread(may__parker *p, uint32_t mask, int64_t deadline)
{
    for (;;) {
        uint32_t v = atomic_load_explicit(&p->word, memory_order_acquire);
        int r = consume(p, v, mask);
        if (r <= 0)
            return r;
        if (deadline == 0)
            return -ETIMEDOUT;
        if (deadline > 0 && deadline <= may__now())
            return -ETIMEDOUT;
        if (!atomic_compare_exchange_weak_explicit(&p->word, &v, v | MAY__P_PARKED,
                                                   memory_order_acq_rel, memory_order_relaxed))
            continue;
        /* an absolute monotonic deadline (plat.h) */
        may__futex_wait_until(&p->word, v | MAY__P_PARKED, deadline);
        atomic_fetch_and_explicit(&p->word, ~(uint32_t)MAY__P_PARKED, memory_order_acq_rel);
    }
}

MAY_HOT_INLINE int may__park_common(may__parker *p, uint32_t mask, int64_t deadline)
{
    if (p->co)
        return park_co(p->co, mask, deadline);
    return park_thread(p, mask & ~(uint32_t)MAY__P_CANCEL, deadline);
}

MAY_HOT_INLINE int may__wait(may__parker *p, int64_t deadline, int ignore_cancel)
{
    uint32_t mask = MAY__P_WTOKEN | (ignore_cancel ? 0 : MAY__P_CANCEL);
    return may__park_common(p, mask, deadline);
}

int may_park(int64_t deadline)
{
    may_co_t *co = may__cur_co();
    if (!co)
        return -EPERM;
    co->wait_what = "park";
    co->wait_obj = NULL;
    return park_co(co, MAY__P_UTOKEN | MAY__P_CANCEL, deadline);
}

void may_unpark(may_co_t *co)
{
    if (co)
        may__wake(&co->parker, MAY__P_UTOKEN);
}

int may_sleep_until(int64_t deadline)
{
    may_co_t *co = may__cur_co();
    if (!co) {
        if (deadline < 0)
            return -EINVAL;
        may__plat_sleep_until(deadline);
        return 0;
    }
    co->wait_what = "sleep";
    co->wait_obj = NULL;
    int r = park_co(co, MAY__P_CANCEL, deadline < 0 ? MAY_FOREVER : deadline);
    return r == -ECANCELED ? r : 0;
}

int may_sleep(int64_t ns)
{
    return may_sleep_until(may_deadline_in(ns < 0 ? 0 : ns));
}
