/* Deliberate memory errors inside a coroutine, for the ASan build only
 * (registered by tests/san.cmake).  Each runs in a coroutine that has
 * already been switched out and resumed (possibly on the other worker), so
 * the access happens on a coroutine stack that ASan learnt about through
 * the fiber-switch annotations (src/san.h):
 *
 *   san_uaf uaf     reads a freed heap block: ASan must report
 *                   heap-use-after-free with the coroutine's function in the
 *                   access stack
 *   san_uaf stack   reads past a local array: ASan must report
 *                   stack-buffer-overflow and place the address in that
 *                   function's frame on the coroutine's stack
 *   san_uaf uar     reads a local of a function that has returned, after a
 *                   switch (with detect_stack_use_after_return=1): ASan must
 *                   report stack-use-after-return in the returned frame
 *   san_uaf none    the same coroutine without the bug: no report, exit 0
 *                   (the annotations make no false reports), run both
 *                   without and with the use-after-return fake stacks
 */
#include "../test.h"

/* Hide a pointer's provenance from the compiler, which would otherwise
 * warn about (gcc -Wuse-after-free) or fold away the deliberate bug. */
static __attribute__((noinline)) char *launder(char *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static __attribute__((noinline)) int uaf_in_coroutine(void)
{
    char *p = malloc(32);
    ASSERT(p != NULL);
    memset(p, 1, 32);
    free(p);
    return launder(p)[7]; /* heap-use-after-free */
}

static volatile int overrun_index = 16;
static __attribute__((noinline)) int overrun_in_coroutine(void)
{
    char buf[16];
    memset(buf, 2, sizeof buf);
    return launder(buf)[overrun_index]; /* one past the end */
}

/* Needs ASAN_OPTIONS=detect_stack_use_after_return=1 (san.cmake sets it):
 * then frames live on ASan's "fake stack", which the fiber annotations
 * hand over at every switch. */
static __attribute__((noinline)) char *escape_local(void)
{
    char buf[16];
    memset(buf, 3, sizeof buf);
    return launder(buf);
}

static __attribute__((noinline)) int use_after_return_in_coroutine(void)
{
    char *p = escape_local();
    may_yield(); /* a switch between the return and the use */
    return launder(p)[3]; /* stack-use-after-return */
}

static __attribute__((noinline)) int clean_in_coroutine(void)
{
    char buf[16];
    char *p = malloc(32);
    ASSERT(p != NULL);
    memset(buf, 2, sizeof buf);
    memset(p, 1, 32);
    int v = launder(buf)[overrun_index - 1] + launder(p)[7];
    free(p);
    return v;
}

static void *victim(void *arg)
{
    const char *mode = arg;
    /* switch out and back in first: park, then resume from a timer */
    may_yield();
    ASSERT_EQ(may_sleep(TEST_MS(1)), 0);
    int v;
    if (strcmp(mode, "uaf") == 0)
        v = uaf_in_coroutine();
    else if (strcmp(mode, "stack") == 0)
        v = overrun_in_coroutine();
    else if (strcmp(mode, "uar") == 0)
        v = use_after_return_in_coroutine();
    else
        v = clean_in_coroutine();
    return (void *)(intptr_t)v;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "none";
    may_config_t cfg = { .workers = 2 };
    ASSERT_EQ(may_configure(&cfg), 0);
    may_co_t *co;
    may_spawn_opts_t o = { .name = "victim" };
    ASSERT_EQ(may_spawn(&co, victim, (void *)mode, &o), 0);
    void *r = NULL;
    ASSERT_EQ(may_join(co, &r, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_shutdown(), 0);
    printf("san_uaf %s: no error found, result %d\n", mode, (int)(intptr_t)r);
    return 0;
}
