/* test_hook_poll: poll, ppoll, select and a library's own epoll_wait in
 * coroutines on ONE worker: timeouts (the call returns 0 after about its
 * timeout, while another coroutine runs), readiness (one fd, several fds),
 * cancellation (ECANCELED).  Without the hooks the waiting call holds the
 * only worker and B never runs. */
#include "hook_test.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>

static int p[2], q[2];

enum { POLL1, POLL2, PPOLL, SELECT, EPOLL, NKIND };
static const char *const names[NKIND] = { "poll", "poll2", "ppoll", "select", "epoll" };

/* Wait for p[0] (and q[0]) to be readable: the call's result. */
static int wait_read(int kind, int ms)
{
    switch (kind) {
    case POLL1: {
        struct pollfd f = { .fd = p[0], .events = POLLIN };
        int r = poll(&f, 1, ms);
        ASSERT(r <= 0 || (f.revents & POLLIN));
        return r;
    }
    case POLL2: {
        struct pollfd f[2] = { { .fd = q[0], .events = POLLIN }, { .fd = p[0], .events = POLLIN } };
        int r = poll(f, 2, ms);
        ASSERT(r <= 0 || (r == 1 && (f[1].revents & POLLIN) && !f[0].revents));
        return r;
    }
    case PPOLL: {
        struct pollfd f = { .fd = p[0], .events = POLLIN };
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        return ppoll(&f, 1, ms < 0 ? NULL : &ts, NULL);
    }
    case SELECT: {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(p[0], &rd);
        FD_SET(q[0], &rd);
        struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
        int r = select((p[0] > q[0] ? p[0] : q[0]) + 1, &rd, NULL, NULL, ms < 0 ? NULL : &tv);
        ASSERT(r <= 0 || (r == 1 && FD_ISSET(p[0], &rd) && !FD_ISSET(q[0], &rd)));
        return r;
    }
    default: {
        int ep = epoll_create1(EPOLL_CLOEXEC);
        ASSERT_GE(ep, 0);
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = p[0] };
        ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), 0);
        struct epoll_event out[4];
        int r = epoll_wait(ep, out, 4, ms);
        int err = errno;
        ASSERT(r <= 0 || (r == 1 && out[0].data.fd == p[0]));
        close(ep);
        errno = err;
        return r;
    }
    }
}

static void *a_timeout(void *arg)
{
    int kind = *(int *)arg;
    int64_t t0 = may_now();
    ASSERT_EQ(wait_read(kind, 100), 0);
    ASSERT_GE(ms_since(t0), 95);
    ASSERT_LT(ms_since(t0), 5000);
    ASSERT_EQ(atomic_load(&b_ran), 1);
    return NULL;
}

static void *a_ready(void *arg)
{
    int kind = *(int *)arg;
    ASSERT_EQ(wait_read(kind, 10000), 1);
    ASSERT_EQ(atomic_load(&b_ran), 1);
    char c;
    ASSERT_EQ(read(p[0], &c, 1), 1);
    return NULL;
}

static void *b_idle(void *arg)
{
    (void)arg;
    b_start();
    return NULL;
}

static void *b_write(void *arg)
{
    (void)arg;
    b_start();
    ASSERT_EQ(write(p[1], "x", 1), 1);
    return NULL;
}

static void rescue_write(void *arg)
{
    (void)arg;
    (void)!write(p[1], "r", 1);
}

static void *a_cancelled(void *arg)
{
    int kind = *(int *)arg;
    errno = 0;
    ASSERT_EQ(wait_read(kind, -1), -1);
    ASSERT_EQ(errno, ECANCELED);
    return NULL;
}

int main(void)
{
    alarm(60);
    one_worker();
    ASSERT_EQ(pipe(p), 0);
    ASSERT_EQ(pipe(q), 0);
    for (int kind = 0; kind < NKIND; kind++) {
        rescue_t r;
        rescue_start(&r, rescue_write, NULL);
        run_pair(a_timeout, b_idle, &kind);
        rescue_stop(&r);
        rescue_start(&r, rescue_write, NULL);
        run_pair(a_ready, b_write, &kind);
        rescue_stop(&r);
        may_co_t *co;
        ASSERT_EQ(may_spawn(&co, a_cancelled, &kind, NULL), 0);
        ASSERT_EQ(may_sleep(TEST_MS(20)), 0);
        ASSERT_EQ(may_cancel(co), 0);
        ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_CANCELED);
        printf("%s: ok\n", names[kind]);
    }
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
    ASSERT_EQ(may_shutdown(), 0);
    printf("test_hook_poll: ok\n");
    return 0;
}
