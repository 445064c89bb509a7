/* Generators yield values one at a time, from a thread and a coroutine. */
#include "test.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>

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
 * (64 KiB, for overflow reports); it must go away with the thread. */
static void *gen_thread(void *arg)
{
    (void)arg;
    check_fib();
    stack_t ss;
    ASSERT_EQ(sigaltstack(NULL, &ss), 0);
    ASSERT(!(ss.ss_flags & SS_DISABLE));
    return ss.ss_sp;
}

/* Whether addr lies in a mapping of this process (/proc/self/maps). */
static int is_mapped(const void *addr)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ASSERT(f);
    unsigned long lo, hi, a = (unsigned long)(uintptr_t)addr;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi)
            found = 1;
    fclose(f);
    return found;
}

/* A leak would leave every thread's alternate stack mapped at its own
 * address.  A single "is it unmapped now" check is not enough: the freed
 * range can be handed to the next mmap (a sanitizer's allocator, stdio)
 * before we look.  So run many threads and count the distinct addresses
 * that are still mapped at the end: a leak gives all of them. */
static void check_thread_altstack(void)
{
    enum { N = 32 };
    void *sps[N];
    for (int i = 0; i < N; i++) {
        pthread_t t;
        ASSERT_EQ(pthread_create(&t, NULL, gen_thread, NULL), 0);
        ASSERT_EQ(pthread_join(t, &sps[i]), 0);
    }
    int live = 0;
    for (int i = 0; i < N; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++)
            dup |= sps[j] == sps[i];
        if (!dup && is_mapped(sps[i]))
            live++;
    }
    ASSERT(live <= N / 2);
}

int main(void)
{
    check_fib();
    check_thread_altstack();
    may_co_t *cs[8];
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(may_spawn(&cs[i], in_co, NULL, NULL), 0);
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(may_join(cs[i], MAY_FOREVER, NULL), MAY_DONE);
    may_gen_t *g;
    ASSERT_EQ(may_gen_new(&g, NULL, NULL, 0), -EINVAL);
    ASSERT_EQ(may_gen_new(NULL, fib, NULL, 0), -EINVAL);
    ASSERT_EQ(may_gen_resume(NULL, NULL), -EINVAL);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
