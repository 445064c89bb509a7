/* Generators yield values one at a time, from a thread and a coroutine. */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

static void *fib(may_gen_t *g, void *arg)
{
    long n = (long)(intptr_t)arg, a = 0, b = 1;
    for (long i = 0; i < n; i++) {
        may_gen_yield(g, (void *)(intptr_t)a);
        long t = a + b;
        a = b;
        b = t;
    }
    return (void *)(intptr_t)-1;
}

static void check_fib(void)
{
    may_gen_t *g;
    ASSERT_EQ(may_gen_new(&g, fib, (void *)10, 0), 0);
    long expect[] = { 0, 1, 1, 2, 3, 5, 8, 13, 21, 34 };
    void *v;
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(may_gen_resume(g, &v), 1);
        ASSERT_EQ((intptr_t)v, expect[i]);
    }
    ASSERT_EQ(may_gen_resume(g, &v), 0);
    ASSERT_EQ((intptr_t)v, -1);
    ASSERT_EQ(may_gen_resume(g, &v), -EINVAL);
    may_gen_free(g);
}

static void *in_co(void *arg)
{
    (void)arg;
    check_fib();
    /* an unfinished generator can be freed */
    may_gen_t *g;
    ASSERT_EQ(may_gen_new(&g, fib, (void *)1000, 0), 0);
    void *v;
    ASSERT_EQ(may_gen_resume(g, &v), 1);
    may_gen_free(g);
    return NULL;
}

/* A plain thread that uses a generator gets an alternate signal stack
 * (64 KiB, for overflow reports); it must go away with the thread.  The
 * thread writes a mark of its own at the bottom of that stack, where only a
 * very deep signal frame would reach, and returns the stack's address. */
#define ALT_MARK(i) (0x6d61792d616c7400ull + (uint64_t)(i))

static void *gen_thread(void *arg)
{
    check_fib();
    stack_t ss;
    ASSERT_EQ(sigaltstack(NULL, &ss), 0);
    ASSERT(!(ss.ss_flags & SS_DISABLE));
    *(volatile uint64_t *)ss.ss_sp = ALT_MARK((uintptr_t)arg);
    return ss.ss_sp;
}

/* After the threads are gone, no mark may be left: a leaked stack keeps
 * its mark, while a freed one reads as unmapped, or as whatever mapping
 * took the range over since (a sanitizer's allocator, stdio, the next
 * thread's stack with its own mark).  Reading through /proc/self/mem
 * cannot fault and is not seen by a sanitizer. */
static void check_thread_altstack(void)
{
    enum { N = 32 };
    void *sps[N];
    for (int i = 0; i < N; i++) {
        pthread_t t;
        ASSERT_EQ(pthread_create(&t, NULL, gen_thread, (void *)(uintptr_t)i), 0);
        ASSERT_EQ(pthread_join(t, &sps[i]), 0);
    }
    int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    ASSERT(fd >= 0);
    int stale = 0;
    for (int i = 0; i < N; i++) {
        uint64_t v;
        if (pread(fd, &v, sizeof v, (off_t)(uintptr_t)sps[i]) == (ssize_t)sizeof v &&
            v == ALT_MARK(i))
            stale++;
    }
    close(fd);
    ASSERT_EQ(stale, 0);
}

int main(void)
{
    check_fib();
    check_thread_altstack();
    may_co_t *cs[8];
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(may_spawn(&cs[i], in_co, NULL, NULL), 0);
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(may_join(cs[i], NULL, MAY_FOREVER), MAY_DONE);
    may_gen_t *g;
    ASSERT_EQ(may_gen_new(&g, NULL, NULL, 0), -EINVAL);
    ASSERT_EQ(may_gen_new(NULL, fib, NULL, 0), -EINVAL);
    ASSERT_EQ(may_gen_resume(NULL, NULL), -EINVAL);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
