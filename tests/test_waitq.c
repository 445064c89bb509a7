/* The ending of a wait that fails while its waker is at work (src/waitq.c):
 * a waiter whose wait is cancelled or times out after a waker has claimed
 * it must wait for that waker's wake and keep (or pass on) what it was
 * given.  Each part races the failure against the grant many times and
 * checks that nothing is lost or made up:
 *
 *   - a select and a plain receive, cancelled while a thread sends to them
 *     (cancellation beats a pending wake in the parker, so a send that
 *     completes after the cancellation takes the claimed path): a send that
 *     went through was received, with its value, and the channels are left
 *     with no blocked receiver;
 *   - an offloaded file read (uninterruptible once running) whose deadline
 *     passes while the helper is blocked in read(2): the call waits for the
 *     helper and returns the data; had it returned -ETIMEDOUT, the data
 *     must still be in the pipe. */
#include "test.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

/* ---- channel receivers cancelled while a send completes ------------------ */

static may_chan_t *ch1, *ch2;

typedef struct {
    int use_select; /* may_select over ch1 and ch2, else may_chan_recv(ch1) */
    _Atomic int ready; /* about to block */
    _Atomic int done;  /* returned */
    int ret;           /* the call's result: 0 (ch1's case, or received) or an error */
    long value;        /* what it received */
} receiver;

static void *receive(void *arg)
{
    receiver *r = arg;
    long v1 = -1, v2 = -1;
    atomic_store(&r->ready, 1);
    if (r->use_select) {
        may_select_case_t cs[2] = {
            { .op = MAY_SELECT_RECV, .chan = ch1, .elem = &v1 },
            { .op = MAY_SELECT_RECV, .chan = ch2, .elem = &v2 },
        };
        r->ret = may_select(cs, 2, MAY_FOREVER);
        if (r->ret >= 0)
            ASSERT_EQ(cs[r->ret].result, 0);
    } else {
        r->ret = may_chan_recv(ch1, &v1, MAY_FOREVER);
    }
    r->value = v1;
    atomic_store(&r->done, 1);
    return NULL;
}

static void race_receivers(int use_select)
{
    ASSERT_EQ(may_chan_new(&ch1, sizeof(long), 0), 0);
    ASSERT_EQ(may_chan_new(&ch2, sizeof(long), 0), 0);
    long rounds = test_scale(3000), sent_total = 0, cancelled_total = 0;
    for (long k = 0; k < rounds; k++) {
        receiver r = { .use_select = use_select, .ret = 1 };
        may_co_t *c;
        ASSERT_EQ(may_spawn(&c, receive, &r, NULL), 0);
        while (!atomic_load(&r.ready))
            sched_yield();
        /* Vary which comes first: the cancellation, or the first tries of
         * the send. */
        long v = k + 1;
        int sent = 0, tries = 0;
        if (k % 3 == 0)
            may_cancel(c);
        while (!sent && !atomic_load(&r.done)) {
            sent = may_chan_trysend(ch1, &v) == 0;
            if (++tries == (int)(k % 5) + 1 && k % 3 != 0)
                may_cancel(c);
            if (tries % 64 == 0)
                sched_yield(); /* valgrind runs one thread at a time */
        }
        if (k % 3 != 0 && tries < (int)(k % 5) + 1)
            may_cancel(c); /* sent before its turn came: cancel all the same */
        may_join(c, NULL, MAY_FOREVER);
        /* Sent if and only if received, with the value. */
        if (sent) {
            ASSERT_EQ(r.ret, 0);
            ASSERT_EQ(r.value, v);
            sent_total++;
        } else {
            ASSERT_EQ(r.ret, -ECANCELED);
            cancelled_total++;
        }
        /* No receiver of this round is left queued on either channel. */
        ASSERT_EQ(may_chan_trysend(ch1, &v), -EAGAIN);
        ASSERT_EQ(may_chan_trysend(ch2, &v), -EAGAIN);
    }
    printf("%s: %ld rounds, %ld sends received, %ld receivers cancelled\n",
           use_select ? "select" : "recv", rounds, sent_total, cancelled_total);
    may_chan_free(ch1);
    may_chan_free(ch2);
}

/* ---- an uninterruptible offloaded call past its deadline ----------------- */

static int pipe_fds[2];
static int64_t write_after;

static void *late_writer(void *arg)
{
    (void)arg;
    /* The deadline passing is the point of the test: wait for it. */
    while (may_now() < write_after)
        usleep(1000);
    ASSERT_EQ(write(pipe_fds[1], "late", 4), 4);
    return NULL;
}

static void *noop(void *arg)
{
    return arg;
}

static void test_offload_past_deadline(void)
{
    /* A warm helper, so the read starts running long before its deadline. */
    void *res;
    ASSERT_EQ(may_offload(noop, (void *)1, &res, MAY_FOREVER), 0);
    int rounds = (int)test_scale(3), ran = 0;
    for (int k = 0; k < rounds; k++) {
#ifdef _WIN32 /* a CRT pipe: its handle is the fd for may_file_read */
        ASSERT_EQ(_pipe(pipe_fds, 4096, O_BINARY), 0);
        int rfd = (int)_get_osfhandle(pipe_fds[0]);
#else
        ASSERT_EQ(pipe(pipe_fds), 0);
        int rfd = pipe_fds[0];
#endif
        int64_t deadline = may_deadline_in(TEST_MS(100));
        write_after = deadline + TEST_MS(50);
        pthread_t th;
        ASSERT_EQ(pthread_create(&th, NULL, late_writer, NULL), 0);
        char buf[8] = { 0 };
        ssize_t n = may_file_read(rfd, buf, sizeof buf, -1, deadline);
        pthread_join(th, NULL);
        if (n == -ETIMEDOUT) {
            /* Only if the read never ran: then the data is still there. */
#ifndef _WIN32 /* no O_NONBLOCK for a CRT pipe; the writer is done: a
                * blocking read returns the data at once */
            ASSERT_EQ(fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK), 0);
#endif
            ASSERT_EQ(read(pipe_fds[0], buf, sizeof buf), 4);
        } else {
            ASSERT_EQ(n, 4);
            ASSERT_EQ(memcmp(buf, "late", 4), 0);
            ASSERT_GE(may_now(), write_after);
            ran++;
        }
        close(pipe_fds[0]);
        close(pipe_fds[1]);
    }
    printf("offload: %d of %d reads waited past their deadline\n", ran, rounds);
}

int main(void)
{
    race_receivers(1);
    race_receivers(0);
    test_offload_past_deadline();
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
