/*
 * poll_epoll.c - the poller backend for Linux.
 *
 * A backend is the calls declared under "poller" in internal.h: init, close,
 * wait, wake, name, plus add/del/gen for file descriptors; a kqueue or
 * io_uring backend is another file with the same calls.  At most one worker
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
 *
 * File descriptors (the I/O layer, src/io.c) are registered once each,
 * edge-triggered for input and output, with a 64-bit tag that io.c chooses
 * (fd and generation); may__poll_wait hands every event to may__io_ready
 * as MAY__IO_R / MAY__IO_W bits, plus MAY__IO_HUP for a hang-up or error
 * and MAY__IO_URG for TCP urgent data (EPOLLPRI), after either of which
 * io.c's drained-socket shortcut no longer trusts a short read.  The wake
 * eventfd carries the tag UINT64_MAX, which io.c never uses.
 * may__poll_gen() counts epoll instances: io.c re-registers an fd whose
 * registration is from an epoll set closed by may_shutdown.  Only the
 * worker holding may__S.poller_busy calls may__poll_wait, so one static
 * event buffer serves every call.
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
static _Atomic uint32_t poll_gen; /* epoll instances made so far */
static struct epoll_event evs[128]; /* used only by the poller_busy holder */

#define WAKE_TAG UINT64_MAX

int may__poll_init(void)
{
    int r;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return -errno;
    evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (evfd < 0) {
        r = -errno; /* EMFILE, ENFILE, ENOMEM: what the caller sees */
        goto out_close_ep;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_TAG };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, evfd, &ev) != 0) {
        r = -errno;
        goto out_close_ev;
    }
    atomic_store(&wake_pending, 0);
    /* release: an fd registered after reading this generation is in epfd */
    atomic_fetch_add_explicit(&poll_gen, 1, memory_order_release);
    return 0;
out_close_ev:
    close(evfd);
    evfd = -1;
out_close_ep:
    close(epfd);
    epfd = -1;
    return r;
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
    int n;
    const int max = (int)(sizeof evs / sizeof evs[0]);
    if (deadline == INT64_MAX) {
        n = epoll_wait(epfd, evs, max, -1);
    } else {
        int64_t d = deadline <= 0 ? 0 : deadline - may__now();
        if (d < 0)
            d = 0;
        if (d == 0) {
            n = epoll_wait(epfd, evs, max, 0);
        } else if (have_pwait2) {
            struct timespec ts = { .tv_sec = d / 1000000000, .tv_nsec = d % 1000000000 };
            n = (int)syscall(SYS_epoll_pwait2, epfd, evs, max, &ts, NULL, 0);
            if (n < 0 && errno == ENOSYS) {
                have_pwait2 = 0;
                n = epoll_wait(epfd, evs, max, (int)((d + 999999) / 1000000));
            }
        } else {
            n = epoll_wait(epfd, evs, max, (int)((d + 999999) / 1000000));
        }
    }
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == WAKE_TAG) {
            uint64_t v;
            ssize_t r = read(evfd, &v, sizeof v);
            (void)r;
            atomic_store(&wake_pending, 0);
            continue;
        }
        uint32_t e = evs[i].events, io = 0;
        if (e & (EPOLLIN | EPOLLPRI | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
            io |= MAY__IO_R;
        if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            io |= MAY__IO_W;
        if (e & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
            io |= MAY__IO_HUP;
        if (e & EPOLLPRI)
            io |= MAY__IO_URG;
        may__io_ready(evs[i].data.u64, io);
    }
}

int may__poll_add(int fd, uint64_t tag)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET,
                              .data.u64 = tag };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    if (errno == EEXIST && epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
        return 0;
    return -errno;
}

int may__poll_del(int fd)
{
    struct epoll_event ev = { 0 }; /* non-NULL for kernels before 2.6.9 */
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev) == 0 ? 0 : -errno;
}

uint32_t may__poll_gen(void)
{
    /* acquire: pairs with the release in may__poll_init */
    return atomic_load_explicit(&poll_gen, memory_order_acquire);
}

const char *may__poll_name(void)
{
    return "epoll";
}
