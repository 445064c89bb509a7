/*
 * poll_epoll.c - the poller backend for Linux.
 *
 * A backend is five calls (init, close, wait, wake, name); a kqueue or
 * io_uring backend is another file with the same five.  At most one worker
 * at a time sits in may__poll_wait (the scheduler's poller_busy flag decides
 * who): it sleeps there when it has nothing to run, until the earliest timer
 * or a wake.  So an idle runtime is one thread in epoll_pwait2 and the others
 * in futex_wait, and nothing wakes up until there is work.
 *
 * The wake is an eventfd in the epoll set, level-triggered: a wake sent
 * before the poller enters epoll makes that epoll return at once, so no wake
 * is lost.  epoll_pwait2 takes a nanosecond timeout, so timers are not
 * rounded to milliseconds; on kernels without it we fall back to
 * epoll_wait and round up.
 */
#include "internal.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int epfd = -1;
static int evfd = -1;
static _Atomic int wake_pending;
static int have_pwait2 = 1;

int may__poll_init(void)
{
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return -errno;
    evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (evfd < 0)
        goto out_close_ep;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, evfd, &ev) != 0)
        goto out_close_ev;
    atomic_store(&wake_pending, 0);
    return 0;
out_close_ev:
    close(evfd);
    evfd = -1;
out_close_ep:
    close(epfd);
    epfd = -1;
    return -ENOMEM;
}

void may__poll_close(void)
{
    if (evfd >= 0)
        close(evfd);
    if (epfd >= 0)
        close(epfd);
    evfd = epfd = -1;
}

void may__poll_wake(void)
{
    /* One eventfd write per wait is enough; skip it if one is pending. */
    if (atomic_exchange(&wake_pending, 1))
        return;
    uint64_t one = 1;
    ssize_t r = write(evfd, &one, sizeof one);
    (void)r;
}

void may__poll_wait(int64_t deadline)
{
    struct epoll_event evs[64];
    int n;
    if (deadline == INT64_MAX) {
        n = epoll_wait(epfd, evs, 64, -1);
    } else {
        int64_t d = deadline - may__now();
        if (d < 0)
            d = 0;
        if (have_pwait2) {
            struct timespec ts = { .tv_sec = d / 1000000000, .tv_nsec = d % 1000000000 };
            n = (int)syscall(SYS_epoll_pwait2, epfd, evs, 64, &ts, NULL, 0);
            if (n < 0 && errno == ENOSYS) {
                have_pwait2 = 0;
                n = epoll_wait(epfd, evs, 64, (int)((d + 999999) / 1000000));
            }
        } else {
            n = epoll_wait(epfd, evs, 64, (int)((d + 999999) / 1000000));
        }
    }
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {
            uint64_t v;
            ssize_t r = read(evfd, &v, sizeof v);
            (void)r;
            atomic_store(&wake_pending, 0);
        }
        /* fd readiness (the I/O layer) will dispatch here */
    }
}

const char *may__poll_name(void)
{
    return "epoll";
}
