/* Generators yield values one at a time, from a thread and a coroutine;
 * cleanup handlers pushed inside a generator are its own (run when it
 * returns, when it is freed unfinished, and by may_exit/may_panic inside
 * it, before its resumer's). */
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
#ifdef _WIN32 /* no sigaltstack: the overflow report runs on the guarantee */
    return arg;
#else
    stack_t ss;
    ASSERT_EQ(sigaltstack(NULL, &ss), 0);
    ASSERT(!(ss.ss_flags & SS_DISABLE));
    *(volatile uint64_t *)ss.ss_sp = ALT_MARK((uintptr_t)arg);
    return ss.ss_sp;
#endif
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
#ifdef _WIN32
    printf("skip: the threads' signal stacks (no sigaltstack or /proc on Windows)\n");
#else
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
#endif
}

/* ---- cleanup handlers -------------------------------------------------- */

/* What ran, in order: each handler appends its tag. */
static char trail[32];
static _Atomic int trail_len;
static void mark(void *tag)
{
    int i = atomic_fetch_add(&trail_len, 1);
    ASSERT_LT(i, (int)sizeof trail - 1);
    trail[i] = (char)(intptr_t)tag;
}
static void trail_reset(void)
{
    memset(trail, 0, sizeof trail);
    atomic_store(&trail_len, 0);
}

/* Pushes a handler (its node in this frame) and yields with it pushed;
 * arg 1: then pops it without running it, pushes 'r' and returns. */
static void *pusher(may_gen_t *g, void *arg)
{
    may_cleanup_t node;
    static may_cleanup_t node2; /* outlives the frame: still pushed at the return */
    may_cleanup_push(&node, mark, (void *)'g');
    may_gen_yield(g, NULL);
    may_cleanup_pop(false);
    if (arg) {
        may_cleanup_push(&node2, mark, (void *)'r');
        return NULL; /* still pushed: runs as the generator returns */
    }
    return NULL;
}

/* The handler of a suspended generator runs when it is freed, once, and
 * never later from its resumer's list (it used to be pushed there: the
 * resumer ran it at its own end, from a node in freed memory).  A pop
 * inside the generator pops the generator's handler, not the resumer's. */
static void gen_cleanups(void)
{
    may_cleanup_t mine;
    may_cleanup_push(&mine, mark, (void *)'c');
    may_gen_t *g;
    ASSERT_EQ(may_gen_new(&g, pusher, NULL, 0), 0);
    ASSERT_EQ(may_gen_resume(g, NULL), 1);
    ASSERT_EQ(atomic_load(&trail_len), 0);
    may_gen_free(g); /* suspended with 'g' pushed */
    ASSERT_EQ(atomic_load(&trail_len), 1);
    ASSERT_EQ(trail[0], 'g');

    /* popped inside, then one left pushed at its return */
    ASSERT_EQ(may_gen_new(&g, pusher, (void *)1, 0), 0);
    ASSERT_EQ(may_gen_resume(g, NULL), 1);
    ASSERT_EQ(may_gen_resume(g, NULL), 0);
    ASSERT_EQ(atomic_load(&trail_len), 2);
    ASSERT_EQ(trail[1], 'r');
    may_gen_free(g);
    ASSERT_EQ(atomic_load(&trail_len), 2);

    may_cleanup_pop(true); /* ours is still the top of our list */
    ASSERT_EQ(atomic_load(&trail_len), 3);
    ASSERT_EQ(trail[2], 'c');
}

/* In a coroutine, or on a plain thread. */
static void *cleanups_co(void *arg)
{
    (void)arg;
    gen_cleanups();
    return NULL;
}

/* may_exit or may_panic inside nested generators: the inner generator's
 * handlers, then the outer's, then the coroutine's, which runs on the
 * coroutine's own stack and may free both generators. */
static may_gen_t *outer_g, *inner_g;

static void *inner_fn(may_gen_t *g, void *arg)
{
    (void)g;
    may_cleanup_t n;
    may_cleanup_push(&n, mark, (void *)'i');
    if (arg)
        may_panic("inside a generator");
    may_exit((void *)0x5eed);
}

static void *outer_fn(may_gen_t *g, void *arg)
{
    (void)g;
    may_cleanup_t n;
    may_cleanup_push(&n, mark, (void *)'o');
    ASSERT_EQ(may_gen_new(&inner_g, inner_fn, arg, 0), 0);
    may_gen_resume(inner_g, NULL);
    may_panic("not reached: the exit goes on through the outer generator");
}

static char *co_frame; /* a local of exit_co: its stack */

static void free_both(void *arg)
{
    (void)arg;
    char here;
    /* on the coroutine's stack, a few frames below exit_co, not on a
     * generator's (another mapping) */
    ASSERT((uintptr_t)(co_frame - &here) < 16384);
    mark((void *)'c');
    may_gen_free(inner_g); /* both DONE, their stacks no longer in use */
    may_gen_free(outer_g);
}

static void *exit_co(void *arg)
{
    char frame;
    co_frame = &frame;
    may_cleanup_t n;
    may_cleanup_push(&n, free_both, NULL);
    ASSERT_EQ(may_gen_new(&outer_g, outer_fn, arg, 0), 0);
    may_gen_resume(outer_g, NULL);
    may_panic("not reached: the exit ends this coroutine");
}

static void gen_exit(void)
{
    for (int panic = 0; panic < 2; panic++) {
        trail_reset();
        may_co_t *c;
        void *r = NULL;
        ASSERT_EQ(may_spawn(&c, exit_co, (void *)(intptr_t)panic, NULL), 0);
        ASSERT_EQ(may_join(c, &r, MAY_FOREVER), panic ? MAY_PANICKED : MAY_DONE);
        ASSERT_PTR_EQ(r, panic ? NULL : (void *)0x5eed);
        ASSERT_EQ(strcmp(trail, "ioc"), 0);
    }
}

int main(void)
{
    check_fib();
    trail_reset();
    /* On a plain thread, not the main one: under TSan (clang 14) a second
     * generator run to its end on the main thread crashes TSan itself. */
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, cleanups_co, NULL), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_EQ(atomic_load(&trail_len), 3);
    trail_reset();
    may_co_t *cc;
    ASSERT_EQ(may_spawn(&cc, cleanups_co, NULL, NULL), 0);
    ASSERT_EQ(may_join(cc, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(atomic_load(&trail_len), 3);
    gen_exit();
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
