/* A stack overflow is reported with the coroutine's id, name and stack
 * size, in each stack mode, and ends the process with a failure status; a
 * generator's overflow likewise, as a generator's (with the coroutine that
 * runs it), inside a coroutine and on a plain thread.  Each case runs in a
 * child process. */
#include "test.h"
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>
#define MAY_NOINLINE_TEST __attribute__((noinline))


/* Shallow overflow in dense mode: write a little way into the soft guard
 * page below the stack, without faulting, then return normally.  The next
 * coroutine that gets the stack finds the guard written and reports the
 * one that overflowed. */
static char *pads[2];
static MAY_NOINLINE_TEST void dig(long levels, int write)
{
    volatile char pad[512];
    if (write)
        memset((char *)pad, 0x5a, sizeof pad); /* every byte of the frame */
    if (levels < 2)
        pads[levels] = (char *)pad;
    if (levels > 0)
        dig(levels - 1, write);
    __asm__ volatile("" ::: "memory");
}

static void *shallow(void *arg)
{
    (void)arg;
    /* the usable
     * stack is 64 KiB minus the soft guard page and the control block,
     * about 60.5 KiB: overshoot by about 1.5 KiB into the 4 KiB guard */
    dig(1, 0);
    long frame = pads[1] - pads[0]; /* measured frame size */
    dig(62000 / frame, 1);
    return NULL;
}

static void *innocent(void *arg)
{
    (void)arg;
    return NULL;
}

__attribute__((unused)) static void *shallow_then_reuse(void *arg)
{
    (void)arg;
    may_co_t *c;
    may_spawn_opts_t o = { .name = "shallow-dense" };
    may_spawn(&c, shallow, NULL, &o);
    may_join(c, NULL, MAY_FOREVER);
    may_spawn(&c, innocent, NULL, NULL); /* reuses the stack: check fires */
    may_join(c, NULL, MAY_FOREVER);
    return NULL;
}

/* A generator whose body recurses until its stack overflows. */
static void *gen_overflow_body(may_gen_t *g, void *arg)
{
    (void)g, (void)arg;
    return (void *)(intptr_t)test_recurse(0);
}

static void *gen_overflow(void *arg)
{
    (void)arg;
    may_gen_t *g;
    ASSERT_EQ(may_gen_new(&g, gen_overflow_body, NULL, 0), 0);
    may_gen_resume(g, NULL);
    return NULL;
}

/* Run fn in a child (in a coroutine named name, or with on_thread right on
 * the child's main thread) and check that it dies saying what, name (if
 * any) and the stack size.  The generator cases give the coroutine a stack
 * of another size, so it is mapped on its own: in a dense slab it would lie
 * right below the generator's, whose overflow runs down through it
 * (through its control block too, and its name would be gone). */
static void run_child(int mode, void *(*fn)(void *), const char *name, int on_thread,
                      const char *what)
{
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        may_config_t cfg = { .stack_mode = mode, .workers = 1 };
        may_configure(&cfg);
        if (on_thread) {
            fn(NULL);
        } else {
            may_co_t *c;
            may_spawn_opts_t o = { .name = name };
            if (fn == gen_overflow)
                o.stack_size = 131072;
            may_spawn(&c, fn, NULL, &o);
            may_join(c, NULL, MAY_FOREVER);
        }
        _exit(0); /* not reached if the overflow is caught */
    }
    close(pipefd[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    while ((r = read(pipefd[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    close(pipefd[0]);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    printf("mode %d: child status %#x, said: %s", mode, status, buf);
    ASSERT(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    ASSERT(strstr(buf, what) != NULL);
    if (name)
        ASSERT(strstr(buf, name) != NULL);
    ASSERT(strstr(buf, "stack size 65536") != NULL);
}

int main(void)
{
    const char *in_co = "stack overflow in coroutine";
    run_child(MAY_STACK_GUARD, test_overflow_entry, "deep-guarded", 0, in_co);
    run_child(MAY_STACK_DENSE, test_overflow_entry, "deep-dense", 0, in_co);
    /* a generator's stack: inside a coroutine (which the report names) and
     * on a plain thread */
    run_child(MAY_STACK_GUARD, gen_overflow, "gen-guarded", 0, "stack overflow in generator 0x");
    run_child(MAY_STACK_DENSE, gen_overflow, "gen-dense", 0, "stack overflow in generator 0x");
    run_child(MAY_STACK_GUARD, gen_overflow, NULL, 1, "run by a plain thread");
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#if defined(__has_feature)
#if !__has_feature(address_sanitizer) && !__has_feature(thread_sanitizer)
#define SHALLOW_OK 1
#endif
#else
#define SHALLOW_OK 1
#endif
#endif
#ifdef SHALLOW_OK
    /* sanitizers change frame sizes; the exact overshoot is for plain builds */
    run_child(MAY_STACK_DENSE, shallow_then_reuse, "shallow-dense", 0, in_co);
#endif
    printf("ok\n");
    return 0;
}
