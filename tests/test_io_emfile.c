/* Accept when the process is out of descriptors: with RLIMIT_NOFILE
 * lowered and the table filled, may_tcp_accept must neither spin (CPU time
 * stays low while it waits) nor crash, return -EMFILE at its deadline, and
 * accept the pending connection once descriptors are free again. */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/resource.h>
#include <unistd.h>

static int lfd;

static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static void *accept_co(void *arg)
{
    int64_t ms = (int64_t)(intptr_t)arg;
    return (void *)(intptr_t)may_tcp_accept(lfd, NULL, may_deadline_in(TEST_MS(ms)));
}

int main(void)
{
    /* valgrind keeps its own descriptor limit and closes what the kernel
     * returns above it, so the pending connection would be lost */
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "valgrind")) {
        printf("skip: under valgrind\n");
        return 0;
    }
    ASSERT_EQ(may_start(), 0);
    lfd = may_tcp_listen("127.0.0.1:0", 16, 0);
    ASSERT_GE(lfd, 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", may_tcp_local_port(lfd));
    /* a connection waiting in the backlog */
    int c = may_tcp_connect(addr, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(c, 0);
    /* register the listener before the table is full */
    ASSERT_EQ(may_fd_wait(lfd, MAY_READ, may_deadline_in(TEST_MS(3000))), MAY_READ);

    struct rlimit old, rl;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    rl = old;
    rl.rlim_cur = 256 < old.rlim_cur ? 256 : old.rlim_cur;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    static int held[4096];
    int nheld = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            ASSERT_EQ(errno, EMFILE);
            break;
        }
        ASSERT_LT(nheld, 4096);
        held[nheld++] = fd;
    }

    /* from a coroutine: waits with backoff, then -EMFILE */
    int64_t t0 = may_now(), c0 = cpu_ns();
    may_co_t *co;
    void *res;
    ASSERT_EQ(may_spawn(&co, accept_co, (void *)(intptr_t)300, NULL), 0);
    ASSERT_EQ(may_join(co, &res, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)res, -EMFILE);
    int64_t wall = may_now() - t0, cpu = cpu_ns() - c0;
    ASSERT_GE(wall, TEST_MS(300));
    printf("EMFILE wait: wall %lld ms, cpu %lld ms\n", (long long)(wall / 1000000),
           (long long)(cpu / 1000000));
    ASSERT_LT(cpu, wall / 4);
    /* from this plain thread too */
    ASSERT_EQ(may_tcp_accept(lfd, NULL, may_deadline_in(TEST_MS(20))), -EMFILE);

    /* free descriptors while an accept waits: it recovers */
    ASSERT_EQ(may_spawn(&co, accept_co, (void *)(intptr_t)5000, NULL), 0);
    may_sleep(TEST_MS(50));
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    t0 = may_now();
    ASSERT_EQ(may_join(co, &res, MAY_FOREVER), MAY_DONE);
    int s = (int)(intptr_t)res;
    ASSERT_GE(s, 0);
    ASSERT_LT(may_now() - t0, TEST_MS(1000)); /* within one backoff step */
    ASSERT_EQ(may_tcp_write_all(c, "ok", 2, MAY_FOREVER), 2);
    char b[2];
    ASSERT_EQ(may_tcp_read_full(s, b, 2, may_deadline_in(TEST_MS(3000))), 2);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    may_tcp_close(s);
    may_tcp_close(c);
    may_tcp_close(lfd);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
