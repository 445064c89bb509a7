/*
 * win_chkstk.c - frames larger than a page on a coroutine stack: the
 * compiler calls ___chkstk_ms for each, which touches every page in order
 * from the top; then one 400 KiB alloca.  Twice: on a stack committed in
 * full, and on one with only its top page committed, which the system
 * grows a page at a time at its guard page (the case that crashed wine
 * while stack_win.c reserved with PAGE_NOACCESS: docs/WINDOWS.md).  After
 * the lazy run the guard page must have moved down, and the bottom of the
 * stack must still be only reserved.
 */
#include "../../src/win/win.h"
#include "win_test.h"

#include <malloc.h>
#include <string.h>
#include <windows.h>

static may__win_ctx main_ctx, co_ctx;
static may__win_stack co_stack;
static volatile uint64_t result;

__attribute__((noinline)) static uint64_t big(int n)
{
    volatile unsigned char a[20000]; /* > 1 page: a ___chkstk_ms call */
    for (size_t i = 0; i < sizeof a; i += 512) /* all of it (clang shrinks it else) */
        a[i] = 0;
    a[0] = (unsigned char)n;
    a[sizeof a - 1] = (unsigned char)(n + 1);
    uint64_t r = n ? big(n - 1) : 0;
    return r + a[0] + a[sizeof a - 1];
}

static void co_main(void *arg)
{
    (void)arg;
    uint64_t r = big(40); /* 40 * 20 KB: 800 KB of the 1 MiB */
    size_t n = 400 * 1024;
    unsigned char *p = alloca(n);
    memset(p, 0x5a, n);
    result = r + p[0] + p[n - 1];
    may__win_ctx_switch(&co_ctx, &main_ctx);
    WCHECK(0);
}

static void run(size_t commit)
{
    WCHECK_EQ(may__win_stack_alloc(&co_stack, 1024 * 1024, commit, "chkstk"), 0);
    char *limit0 = co_stack.limit;
    result = 0;
    may__win_stack_ctx(&co_stack, &co_ctx, co_main, NULL);
    may__win_ctx_switch(&main_ctx, &co_ctx);
    uint64_t want = 0;
    for (int n = 0; n <= 40; n++)
        want += (uint64_t)(unsigned char)n + (unsigned char)(n + 1);
    WCHECK_EQ(result, want + 0x5a + 0x5a);
    MEMORY_BASIC_INFORMATION mbi;
    WCHECK(VirtualQuery(limit0 - 1, &mbi, sizeof mbi));
    if (commit == 0) {
        /* Nothing ran into the guard page: it is still one. */
        WCHECK(mbi.Protect & PAGE_GUARD);
    } else {
        /* The first guard page became stack; the bottom is untouched. */
        WCHECK_EQ(mbi.State, MEM_COMMIT);
        WCHECK_EQ(mbi.Protect, PAGE_READWRITE);
        char *low = co_stack.alloc + 4096 + MAY__WIN_STACK_HEADROOM + 4096;
        WCHECK(VirtualQuery(low, &mbi, sizeof mbi));
        WCHECK_EQ(mbi.State, MEM_RESERVE);
    }
    may__win_stack_free(&co_stack);
}

int main(void)
{
    WCHECK_EQ(may__win_stack_thread_init(), 0);
    WCHECK_EQ(may__win_overflow_install(), 0);
    run(0);
    run(4096);
    printf("win_chkstk: 800 KB of 20 KB frames and a 400 KB alloca on a 1 MiB coroutine stack, "
           "committed in full and grown from one page\n");
    return 0;
}
