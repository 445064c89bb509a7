/* Channels: creation and bad input, the try-receive state sequence (empty,
 * value, empty, closed), close and drain, disconnect of blocked senders and
 * receivers, rendezvous hand-off, element sizes (0, 1, big structs),
 * unbounded growth, timeouts and cancellation from coroutines and threads. */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

static void *thread_run(void *(*fn)(void *), void *arg, pthread_t *t)
{
    ASSERT_EQ(pthread_create(t, NULL, fn, arg), 0);
    return NULL;
}

static void test_bad_input(void)
{
    may_chan_t *ch;
    ASSERT_EQ(may_chan_new(NULL, 8, 1), -EINVAL);
    ASSERT_EQ(may_chan_new(&ch, (size_t)1 << 40, 1), -EINVAL);
    ASSERT_EQ(may_chan_new(&ch, 1 << 20, (size_t)1 << 60), -EINVAL);
    ASSERT_EQ(may_chan_new(&ch, 8, 3), 0);
    ASSERT_EQ(may_chan_cap(ch), 3);
    ASSERT_EQ(may_chan_len(ch), 0);
    ASSERT_EQ(may_chan_send(ch, NULL, MAY_NOWAIT), -EINVAL);
    ASSERT_EQ(may_chan_trysend(ch, NULL), -EINVAL);
    ASSERT_EQ(may_chan_send(NULL, "x", MAY_NOWAIT), -EINVAL);
    ASSERT_EQ(may_chan_recv(NULL, NULL, MAY_NOWAIT), -EINVAL);
    may_chan_free(ch);
    may_chan_free(NULL);
    ASSERT_EQ(may_chan_make(&ch, double, MAY_CHAN_UNBOUNDED), 0);
    ASSERT(may_chan_cap(ch) == MAY_CHAN_UNBOUNDED);
    may_chan_free(ch);
}

/* try-receive walks empty -> value -> empty -> closed, for every shape. */
static void test_try_sequence(size_t cap)
{
    may_chan_t *ch;
    long v = 0, x = 77;
    ASSERT_EQ(may_chan_new(&ch, sizeof(long), cap), 0);
    ASSERT_EQ(may_chan_tryrecv(ch, &v), -EAGAIN);
    if (cap == 0) {
        ASSERT_EQ(may_chan_trysend(ch, &x), -EAGAIN); /* nobody receives */
        ASSERT_EQ(may_chan_len(ch), 0);
        ASSERT_EQ(may_chan_send(ch, &x, MAY_NOWAIT), -ETIMEDOUT);
    } else {
        ASSERT_EQ(may_chan_trysend(ch, &x), 0);
        ASSERT_EQ(may_chan_len(ch), 1);
        ASSERT_EQ(may_chan_tryrecv(ch, &v), 0);
        ASSERT_EQ(v, 77);
    }
    ASSERT_EQ(may_chan_tryrecv(ch, &v), -EAGAIN);
    ASSERT_EQ(may_chan_recv(ch, &v, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT(!may_chan_is_closed(ch));
    ASSERT_EQ(may_chan_close(ch), 0);
    ASSERT(may_chan_is_closed(ch));
    ASSERT_EQ(may_chan_tryrecv(ch, &v), -EPIPE);
    ASSERT_EQ(may_chan_recv(ch, &v, MAY_FOREVER), -EPIPE);
    ASSERT_EQ(may_chan_trysend(ch, &x), -EPIPE);
    ASSERT_EQ(may_chan_send(ch, &x, MAY_FOREVER), -EPIPE);
    ASSERT_EQ(may_chan_close(ch), -EPIPE);
    may_chan_free(ch);
}

/* Close keeps what is buffered: receivers drain it in order, then -EPIPE. */
static void test_drain(void)
{
    may_chan_t *ch;
    ASSERT_EQ(may_chan_new(&ch, sizeof(int), 4), 0);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(may_chan_send(ch, &i, MAY_NOWAIT), 0);
    int x = 9;
    ASSERT_EQ(may_chan_trysend(ch, &x), -EAGAIN); /* full */
    ASSERT_EQ(may_chan_send(ch, &x, may_deadline_in(TEST_MS(5))), -ETIMEDOUT);
    ASSERT_EQ(may_chan_close(ch), 0);
    ASSERT_EQ(may_chan_len(ch), 4);
    for (int i = 0; i < 4; i++) {
        int v;
        ASSERT_EQ(may_chan_recv(ch, &v, MAY_FOREVER), 0);
        ASSERT_EQ(v, i);
        ASSERT_EQ(may_chan_len(ch), 3 - i);
    }
    ASSERT_EQ(may_chan_recv(ch, &x, MAY_FOREVER), -EPIPE);
    may_chan_free(ch);
}

/* ---- disconnect: blocked parties wake with -EPIPE on close --------------- */

static may_chan_t *dch;
static _Atomic int blocked;

static void *blocked_recv(void *arg)
{
    (void)arg;
    long v;
    atomic_fetch_add(&blocked, 1);
    return (void *)(intptr_t)may_chan_recv(dch, &v, MAY_FOREVER);
}

static void *blocked_send(void *arg)
{
    long v = (long)(intptr_t)arg;
    atomic_fetch_add(&blocked, 1);
    return (void *)(intptr_t)may_chan_send(dch, &v, MAY_FOREVER);
}

static void wait_blocked(int n)
{
    while (atomic_load(&blocked) < n)
        usleep(1000);
    usleep(20000); /* let them reach the wait */
}

static void test_disconnect(size_t cap)
{
    /* receivers on an empty channel */
    ASSERT_EQ(may_chan_new(&dch, sizeof(long), cap), 0);
    atomic_store(&blocked, 0);
    may_co_t *co[4];
    pthread_t th[2];
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(may_spawn(&co[i], blocked_recv, NULL, NULL), 0);
    for (int i = 0; i < 2; i++)
        thread_run(blocked_recv, NULL, &th[i]);
    wait_blocked(6);
    ASSERT_EQ(may_chan_close(dch), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        ASSERT_EQ(may_join(co[i], &r, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ((intptr_t)r, -EPIPE);
    }
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(th[i], &r);
        ASSERT_EQ((intptr_t)r, -EPIPE);
    }
    may_chan_free(dch);

    /* senders on a full channel; the buffered values survive */
    ASSERT_EQ(may_chan_new(&dch, sizeof(long), cap), 0);
    for (size_t i = 0; i < cap; i++) {
        long v = 1000 + (long)i;
        ASSERT_EQ(may_chan_trysend(dch, &v), 0);
    }
    atomic_store(&blocked, 0);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(may_spawn(&co[i], blocked_send, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < 2; i++)
        thread_run(blocked_send, (void *)(intptr_t)(10 + i), &th[i]);
    wait_blocked(6);
    ASSERT_EQ(may_chan_len(dch), cap);
    ASSERT_EQ(may_chan_close(dch), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        ASSERT_EQ(may_join(co[i], &r, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ((intptr_t)r, -EPIPE);
    }
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(th[i], &r);
        ASSERT_EQ((intptr_t)r, -EPIPE);
    }
    for (size_t i = 0; i < cap; i++) {
        long v;
        ASSERT_EQ(may_chan_recv(dch, &v, MAY_NOWAIT), 0);
        ASSERT_EQ(v, 1000 + (long)i);
    }
    ASSERT_EQ(may_chan_tryrecv(dch, NULL), -EPIPE);
    may_chan_free(dch);
}

/* ---- rendezvous: a send completes only when a receiver takes it ---------- */

static _Atomic int sent;
static may_chan_t *rch;

static void *rdv_sender(void *arg)
{
    long v = (long)(intptr_t)arg;
    int r = may_chan_send(rch, &v, MAY_FOREVER);
    atomic_store(&sent, 1);
    return (void *)(intptr_t)r;
}

static void test_rendezvous(int sender_thread)
{
    ASSERT_EQ(may_chan_new(&rch, sizeof(long), 0), 0);
    atomic_store(&sent, 0);
    may_co_t *co = NULL;
    pthread_t th;
    if (sender_thread)
        thread_run(rdv_sender, (void *)5, &th);
    else
        ASSERT_EQ(may_spawn(&co, rdv_sender, (void *)5, NULL), 0);
    usleep(30000);
    ASSERT_EQ(atomic_load(&sent), 0); /* no receiver yet: still blocked */
    ASSERT_EQ(may_chan_len(rch), 0);  /* nothing is buffered */
    long v = 0;
    ASSERT_EQ(may_chan_recv(rch, &v, MAY_FOREVER), 0);
    ASSERT_EQ(v, 5);
    void *r;
    if (sender_thread)
        pthread_join(th, &r);
    else
        ASSERT_EQ(may_join(co, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)r, 0);
    ASSERT_EQ(atomic_load(&sent), 1);
    /* the receiver can be the one that waits, too */
    atomic_store(&sent, 0);
    ASSERT_EQ(may_spawn(&co, rdv_sender, (void *)6, NULL), 0);
    ASSERT_EQ(may_chan_recv(rch, &v, may_deadline_in(TEST_MS(5000))), 0);
    ASSERT_EQ(v, 6);
    ASSERT_EQ(may_join(co, &r, MAY_FOREVER), MAY_DONE);
    may_chan_free(rch);
}

/* ---- element sizes and unbounded growth --------------------------------- */

struct big {
    char tag[100];
    int seq;
};

static void test_sizes(void)
{
    may_chan_t *ch;
    /* zero-size elements: pure signals, counted */
    ASSERT_EQ(may_chan_new(&ch, 0, 3), 0);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(may_chan_trysend(ch, NULL), 0);
    ASSERT_EQ(may_chan_trysend(ch, NULL), -EAGAIN);
    ASSERT_EQ(may_chan_len(ch), 3);
    ASSERT_EQ(may_chan_recv(ch, NULL, MAY_NOWAIT), 0);
    ASSERT_EQ(may_chan_len(ch), 2);
    may_chan_free(ch);

    ASSERT_EQ(may_chan_new(&ch, 1, 2), 0);
    char c = 'a', d = 0;
    ASSERT_EQ(may_chan_trysend(ch, &c), 0);
    ASSERT_EQ(may_chan_tryrecv(ch, &d), 0);
    ASSERT_EQ(d, 'a');
    may_chan_free(ch);

    ASSERT_EQ(may_chan_make(&ch, struct big, 5), 0);
    for (int round = 0; round < 3; round++) { /* wraps the ring */
        for (int i = 0; i < 4; i++) {
            struct big b;
            memset(&b, 0, sizeof b);
            snprintf(b.tag, sizeof b.tag, "elem-%d-%d", round, i);
            b.seq = i;
            ASSERT_EQ(may_chan_send(ch, &b, MAY_NOWAIT), 0);
        }
        for (int i = 0; i < 4; i++) {
            struct big b;
            char want[100];
            ASSERT_EQ(may_chan_recv(ch, &b, MAY_NOWAIT), 0);
            snprintf(want, sizeof want, "elem-%d-%d", round, i);
            ASSERT(strcmp(b.tag, want) == 0);
            ASSERT_EQ(b.seq, i);
        }
    }
    may_chan_free(ch);

    /* unbounded: grow while the ring is wrapped; FIFO order is kept */
    ASSERT_EQ(may_chan_new(&ch, sizeof(int), MAY_CHAN_UNBOUNDED), 0);
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 12; round++) {
        for (int i = 0; i < 3 * round + 5; i++, next_in++)
            ASSERT_EQ(may_chan_trysend(ch, &next_in), 0);
        for (int i = 0; i < 2 * round + 1; i++, next_out++) {
            int v;
            ASSERT_EQ(may_chan_tryrecv(ch, &v), 0);
            ASSERT_EQ(v, next_out);
        }
    }
    ASSERT_EQ(may_chan_len(ch), next_in - next_out);
    ASSERT_EQ(may_chan_close(ch), 0);
    for (; next_out < next_in; next_out++) {
        int v;
        ASSERT_EQ(may_chan_recv(ch, &v, MAY_FOREVER), 0);
        ASSERT_EQ(v, next_out);
    }
    ASSERT_EQ(may_chan_recv(ch, NULL, MAY_FOREVER), -EPIPE);
    may_chan_free(ch);
}

/* ---- timeouts and cancellation ------------------------------------------ */

static may_chan_t *tch;

static void *timed_ops(void *arg)
{
    (void)arg;
    long v = 1;
    int64_t t0 = may_now();
    ASSERT_EQ(may_chan_recv(tch, &v, may_deadline_in(TEST_MS(30))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(30));
    ASSERT_EQ(may_chan_recv(tch, &v, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_chan_recv(tch, &v, 1), -ETIMEDOUT); /* long past */
    t0 = may_now();
    ASSERT_EQ(may_chan_send(tch, &v, may_deadline_in(TEST_MS(30))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(30));
    return NULL;
}

static void *cancel_me_recv(void *arg)
{
    (void)arg;
    long v;
    atomic_fetch_add(&blocked, 1);
    return (void *)(intptr_t)may_chan_recv(tch, &v, may_deadline_in(TEST_MS(10000)));
}

static void *self_cancelled(void *arg)
{
    (void)arg;
    long v = 3;
    may_cancel(may_self());
    /* Cancellation wins over the deadline when it would wait... */
    ASSERT_EQ(may_chan_recv(tch, &v, MAY_NOWAIT), -ECANCELED);
    ASSERT_EQ(may_chan_recv(tch, &v, MAY_FOREVER), -ECANCELED);
    /* ...but what can complete at once does (cleanup may drain). */
    ASSERT_EQ(may_chan_close(tch), 0);
    ASSERT_EQ(may_chan_recv(tch, &v, MAY_FOREVER), -EPIPE);
    return NULL;
}

static void test_timeouts_cancel(void)
{
    ASSERT_EQ(may_chan_new(&tch, sizeof(long), 0), 0);
    may_co_t *co;
    /* one after the other: a coroutine's send would meet a thread's recv */
    ASSERT_EQ(may_spawn(&co, timed_ops, NULL, NULL), 0);
    ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);
    pthread_t th;
    thread_run(timed_ops, NULL, &th);
    pthread_join(th, NULL);

    /* Cancelled receivers leave the channel as it was: the values sent
     * after go to the receivers that were not cancelled, each exactly once. */
    enum { N = 8 };
    may_co_t *rc[N];
    atomic_store(&blocked, 0);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(may_spawn(&rc[i], cancel_me_recv, NULL, NULL), 0);
    wait_blocked(N);
    for (int i = 0; i < N; i += 2)
        ASSERT_EQ(may_cancel(rc[i]), 0);
    for (int i = 0; i < N; i += 2) {
        void *r;
        ASSERT_EQ(may_join(rc[i], &r, MAY_FOREVER), MAY_CANCELED);
        ASSERT_EQ((intptr_t)r, -ECANCELED);
    }
    for (int i = 0; i < N / 2; i++) {
        long v = 100 + i;
        ASSERT_EQ(may_chan_send(tch, &v, may_deadline_in(TEST_MS(5000))), 0);
    }
    long v = 0;
    ASSERT_EQ(may_chan_trysend(tch, &v), -EAGAIN); /* no receiver left */
    for (int i = 1; i < N; i += 2) {
        void *r;
        ASSERT_EQ(may_join(rc[i], &r, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ((intptr_t)r, 0);
    }
    ASSERT_EQ(may_spawn(&co, self_cancelled, NULL, NULL), 0);
    ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_CANCELED);
    may_chan_free(tch);
}

int main(void)
{
    test_bad_input();
    size_t caps[] = { 0, 1, 7, MAY_CHAN_UNBOUNDED };
    for (int i = 0; i < 4; i++)
        test_try_sequence(caps[i]);
    test_drain();
    test_disconnect(0);
    test_disconnect(3);
    test_rendezvous(0);
    test_rendezvous(1);
    test_sizes();
    test_timeouts_cancel();
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
