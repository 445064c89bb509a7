/* The cancellation contract (include/may.h, "Cancellation"), both halves,
 * in a coroutine cancelled before the calls: a call that can complete
 * without waiting completes (lock a free mutex, receive a buffered value,
 * send into room, wait on a fired event, take a semaphore unit, join a
 * coroutine that has ended, read a ready pipe...), and a call that would
 * have to wait fails with -ECANCELED at once: with no deadline, with a
 * far one, with one already passed and with MAY_NOWAIT (cancellation wins
 * over the deadline, for the fd calls too).  On a plain thread, which cannot be cancelled,
 * may_sleep_until(MAY_FOREVER) is -EINVAL. */
#include "test.h"
#include <errno.h>
#include <semaphore.h>
#include <time.h>
#include <unistd.h>

/* ---- objects the checks use, made by main ------------------------------ */

static may_mutex_t *m_free, *m_held, *m_cond;
static may_rwlock_t *rw_free, *rw_read;
static may_cond_t *cond;
static may_sem_t *sem_units, *sem_empty;
static may_event_t *ev_fired, *ev_unfired, *child_ending;
static may_wg_t *wg_zero, *wg_busy;
static may_barrier_t *bar_one, *bar_two;
static may_chan_t *ch_value, *ch_room, *ch_unbounded, *ch_closed, *ch_empty, *ch_full, *ch_rdv;
static int pipe_ready[2], pipe_empty[2];
static sem_t offload_gate; /* the offloaded call blocks on it until main posts */
static _Atomic int offload_ran;

static void *ends_at_once(void *arg)
{
    ASSERT_EQ(may_event_fire(child_ending), 0);
    return arg;
}

static void *waits_long(void *arg)
{
    (void)arg;
    may_sleep(TEST_MS(10000)); /* until cancelled by main */
    return NULL;
}

static void *blocked_call(void *arg)
{
    (void)arg;
    atomic_store(&offload_ran, 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    while (sem_timedwait(&offload_gate, &ts) != 0 && errno == EINTR)
        ;
    return NULL;
}

static int once_runs;
static void once_fn(void *arg)
{
    (void)arg;
    once_runs++;
}

/* ---- half 1: what can complete without waiting completes ---------------- */

static void completes(void)
{
    ASSERT_EQ(may_mutex_lock(m_free, MAY_FOREVER), 0);
    ASSERT_EQ(may_mutex_unlock(m_free), 0);
    ASSERT_EQ(may_rwlock_rdlock(rw_free, MAY_FOREVER), 0);
    ASSERT_EQ(may_rwlock_rdunlock(rw_free), 0);
    ASSERT_EQ(may_rwlock_wrlock(rw_free, MAY_FOREVER), 0);
    ASSERT_EQ(may_rwlock_wrunlock(rw_free), 0);
    ASSERT_EQ(may_rwlock_rdlock(rw_read, MAY_FOREVER), 0); /* shares the read hold */
    ASSERT_EQ(may_rwlock_rdunlock(rw_read), 0);
    int v = 0;
    ASSERT_EQ(may_chan_recv(ch_value, &v, MAY_FOREVER), 0);
    ASSERT_EQ(v, 42);
    v = 7;
    ASSERT_EQ(may_chan_send(ch_room, &v, MAY_FOREVER), 0);
    ASSERT_EQ(may_chan_send(ch_unbounded, &v, MAY_FOREVER), 0);
    ASSERT_EQ(may_chan_recv(ch_closed, &v, MAY_FOREVER), -EPIPE); /* closed and drained */
    may_select_case_t cs[2] = {
        { .op = MAY_SELECT_RECV, .chan = ch_empty, .elem = &v },
        { .op = MAY_SELECT_RECV, .chan = ch_room, .elem = &v }, /* has the 7 */
    };
    ASSERT_EQ(may_select(cs, 2, MAY_FOREVER), 1);
    ASSERT_EQ(v, 7);
    ASSERT_EQ(may_event_wait(ev_fired, MAY_FOREVER), 0);
    ASSERT_EQ(may_sem_wait(sem_units, MAY_FOREVER), 0);
    ASSERT_EQ(may_wg_wait(wg_zero, MAY_FOREVER), 0);
    ASSERT_EQ(may_barrier_wait(bar_one, MAY_FOREVER), MAY_BARRIER_LEADER);
    static may_once_t once = MAY_ONCE_INIT;
    ASSERT_EQ(may_once(&once, once_fn, NULL), 0);
    ASSERT_EQ(once_runs, 1);
    ASSERT_EQ(may_fd_wait(pipe_ready[0], MAY_READ, MAY_FOREVER), MAY_READ);
    char b = 0;
    ASSERT_EQ(may_read(pipe_ready[0], &b, 1, MAY_FOREVER), 1);
    ASSERT_EQ(b, 'x');
    ASSERT_EQ(may_write(pipe_ready[1], "y", 1, MAY_FOREVER), 1); /* room in the pipe */

    /* join: a coroutine that has ended is joined.  It fires the event
     * just before it returns; until its end is published a join would
     * have to wait, and fails, without releasing the handle. */
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, ends_at_once, (void *)9, NULL), 0);
    ASSERT_EQ(may_event_wait(child_ending, MAY_FOREVER), -ECANCELED); /* would wait */
    int r;
    void *res = NULL;
    for (int i = 0; (r = may_join(c, &res, MAY_FOREVER)) == -ECANCELED && i < 1000000; i++)
        may_yield(); /* not a blocking call: it lets the child end */
    ASSERT_EQ(r, MAY_DONE);
    ASSERT_PTR_EQ(res, 9);
}

/* ---- half 2: what would wait fails with -ECANCELED at once --------------- */

static int64_t dl; /* the deadline of this round */

static int w_sleep(void) { return may_sleep_until(dl < 0 ? MAY_FOREVER : dl); }
static int w_park(void)
{
    may_unpark(may_self()); /* a token: park does nothing but wait, and reports the cancel */
    return may_park(dl);
}
static int w_mutex(void) { return may_mutex_lock(m_held, dl); }
static int w_wrlock(void) { return may_rwlock_wrlock(rw_read, dl); }
static int w_sem(void) { return may_sem_wait(sem_empty, dl); }
static int w_event(void) { return may_event_wait(ev_unfired, dl); }
static int w_wg(void) { return may_wg_wait(wg_busy, dl); }
static int w_barrier(void) { return may_barrier_wait(bar_two, dl); }
static int w_recv(void)
{
    int v;
    return may_chan_recv(ch_empty, &v, dl);
}
static int w_send_full(void)
{
    int v = 1;
    return may_chan_send(ch_full, &v, dl);
}
static int w_send_rdv(void)
{
    int v = 1;
    return may_chan_send(ch_rdv, &v, dl);
}
static int w_select(void)
{
    int v;
    may_select_case_t cs[2] = {
        { .op = MAY_SELECT_RECV, .chan = ch_empty, .elem = &v },
        { .op = MAY_SELECT_SEND, .chan = ch_full, .elem = &v },
    };
    return may_select(cs, 2, dl);
}
static int w_cond(void)
{
    ASSERT_EQ(may_mutex_lock(m_cond, MAY_FOREVER), 0); /* free: completes */
    int r = may_cond_wait(cond, m_cond, dl);
    ASSERT_EQ(may_mutex_trylock(m_cond), -EBUSY); /* locked again, as documented */
    ASSERT_EQ(may_mutex_unlock(m_cond), 0);
    return r;
}
static may_co_t *long_child;
static int w_join(void) { return may_join(long_child, NULL, dl); }
static int w_fd_wait(void) { return may_fd_wait(pipe_empty[0], MAY_READ, dl); }
static int w_read(void)
{
    char b;
    return (int)may_read(pipe_empty[0], &b, 1, dl);
}
static int w_offload(void)
{
    void *res;
    return may_offload(blocked_call, NULL, &res, dl);
}

static const struct {
    const char *what;
    int (*fn)(void);
} waits[] = {
    { "sleep", w_sleep },         { "park", w_park },
    { "mutex", w_mutex },         { "wrlock", w_wrlock },
    { "sem", w_sem },             { "event", w_event },
    { "wg", w_wg },               { "barrier", w_barrier },
    { "recv", w_recv },           { "send full", w_send_full },
    { "send rendezvous", w_send_rdv }, { "select", w_select },
    { "cond", w_cond },           { "join", w_join },
    { "fd_wait", w_fd_wait },     { "read", w_read },
    { "offload", w_offload },
};
static void fails_at_once(void)
{
    /* no deadline, a far one, one already passed, "do not wait" */
    const int64_t dls[] = { MAY_FOREVER, may_deadline_in(TEST_MS(20000)), 1, MAY_NOWAIT };
    for (size_t d = 0; d < sizeof dls / sizeof dls[0]; d++) {
        dl = dls[d];
        for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
            int64_t t0 = may_now();
            int r = waits[i].fn();
            int64_t took = may_now() - t0;
            int want = -ECANCELED;
            if (r != want)
                fprintf(stderr, "%s with deadline %lld: %d\n", waits[i].what, (long long)dl, r);
            ASSERT_EQ(r, want);
            ASSERT_LT(took, TEST_MS(2000)); /* at once: nothing here can end the wait */
        }
    }
}

static void *cancelled(void *arg)
{
    (void)arg;
    ASSERT_EQ(may_cancel(may_self()), 0);
    ASSERT(may_cancelled());
    completes();
    fails_at_once();
    may_yield(); /* may_yield is not a blocking call */
    return NULL;
}

int main(void)
{
    ASSERT_EQ(may_mutex_new(&m_free), 0);
    ASSERT_EQ(may_mutex_new(&m_held), 0);
    ASSERT_EQ(may_mutex_new(&m_cond), 0);
    ASSERT_EQ(may_mutex_lock(m_held, MAY_FOREVER), 0);
    ASSERT_EQ(may_rwlock_new(&rw_free), 0);
    ASSERT_EQ(may_rwlock_new(&rw_read), 0);
    ASSERT_EQ(may_rwlock_rdlock(rw_read, MAY_FOREVER), 0);
    ASSERT_EQ(may_cond_new(&cond), 0);
    ASSERT_EQ(may_sem_new(&sem_units, 1), 0);
    ASSERT_EQ(may_sem_new(&sem_empty, 0), 0);
    ASSERT_EQ(may_event_new(&ev_fired), 0);
    ASSERT_EQ(may_event_fire(ev_fired), 0);
    ASSERT_EQ(may_event_new(&ev_unfired), 0);
    ASSERT_EQ(may_event_new(&child_ending), 0);
    ASSERT_EQ(may_wg_new(&wg_zero), 0);
    ASSERT_EQ(may_wg_new(&wg_busy), 0);
    ASSERT_EQ(may_wg_add(wg_busy, 1), 0);
    ASSERT_EQ(may_barrier_new(&bar_one, 1), 0);
    ASSERT_EQ(may_barrier_new(&bar_two, 2), 0);
    int v = 42;
    ASSERT_EQ(may_chan_new(&ch_value, sizeof v, 1), 0);
    ASSERT_EQ(may_chan_send(ch_value, &v, MAY_FOREVER), 0);
    ASSERT_EQ(may_chan_new(&ch_room, sizeof v, 1), 0);
    ASSERT_EQ(may_chan_new(&ch_unbounded, sizeof v, MAY_CHAN_UNBOUNDED), 0);
    ASSERT_EQ(may_chan_new(&ch_closed, sizeof v, 1), 0);
    ASSERT_EQ(may_chan_close(ch_closed), 0);
    ASSERT_EQ(may_chan_new(&ch_empty, sizeof v, 1), 0);
    ASSERT_EQ(may_chan_new(&ch_full, sizeof v, 1), 0);
    ASSERT_EQ(may_chan_send(ch_full, &v, MAY_FOREVER), 0);
    ASSERT_EQ(may_chan_new(&ch_rdv, sizeof v, 0), 0);
    ASSERT_EQ(test_fd_pipe(pipe_ready), 0);
#ifdef _WIN32 /* a loopback TCP pair (test.h): ready once the byte is there */
    ASSERT_EQ(send(pipe_ready[1], "x", 1, 0), 1);
    ASSERT_EQ(may_fd_wait(pipe_ready[0], MAY_READ, may_deadline_in(TEST_MS(10000))), MAY_READ);
#else
    ASSERT_EQ(write(pipe_ready[1], "x", 1), 1);
#endif
    ASSERT_EQ(test_fd_pipe(pipe_empty), 0);
    ASSERT_EQ(sem_init(&offload_gate, 0, 0), 0);
    ASSERT_EQ(may_spawn(&long_child, waits_long, NULL, NULL), 0);

    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, cancelled, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_CANCELED);

    /* the waits left everything as it was */
    ASSERT_EQ(may_sem_value(sem_empty), 0);
    ASSERT_EQ(may_chan_len(ch_full), 1);
    ASSERT(!may_event_is_fired(ev_unfired));
    ASSERT_EQ(may_mutex_unlock(m_held), 0);
    ASSERT_EQ(may_rwlock_rdunlock(rw_read), 0);
    ASSERT_EQ(may_cancel(long_child), 0);
    ASSERT_EQ(may_join(long_child, NULL, MAY_FOREVER), MAY_CANCELED);
    /* an offloaded call that started is abandoned, not interrupted: let it end */
    for (int i = 0; i < 4 * 4; i++)
        sem_post(&offload_gate);

    /* a plain thread cannot be cancelled: sleeping for ever is refused */
    ASSERT_EQ(may_sleep_until(MAY_FOREVER), -EINVAL);
    ASSERT_EQ(may_sleep_until(1), 0); /* passed: returns at once */

    ASSERT_EQ(may_shutdown(), 0); /* waits for the abandoned offloaded calls */
    may_mutex_free(m_free);
    may_mutex_free(m_held);
    may_mutex_free(m_cond);
    may_rwlock_free(rw_free);
    may_rwlock_free(rw_read);
    may_cond_free(cond);
    may_sem_free(sem_units);
    may_sem_free(sem_empty);
    may_event_free(ev_fired);
    may_event_free(ev_unfired);
    may_event_free(child_ending);
    may_wg_free(wg_zero);
    may_wg_free(wg_busy);
    may_barrier_free(bar_one);
    may_barrier_free(bar_two);
    may_chan_free(ch_value);
    may_chan_free(ch_room);
    may_chan_free(ch_unbounded);
    may_chan_free(ch_closed);
    may_chan_free(ch_empty);
    may_chan_free(ch_full);
    may_chan_free(ch_rdv);
    test_fd_close(pipe_ready[0]);
    test_fd_close(pipe_ready[1]);
    test_fd_close(pipe_empty[0]);
    test_fd_close(pipe_empty[1]);
    sem_destroy(&offload_gate);
    printf("ok (offloaded call ran: %d)\n", atomic_load(&offload_ran));
    return 0;
}
