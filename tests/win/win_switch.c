/*
 * win_switch.c - the Windows x64 switch (switch_win64.S): many switches
 * back and forth, each side checking after every switch that its
 * callee-saved registers (rbx, rbp, rdi, rsi, r12-r15, xmm6-15 both
 * halves), MXCSR and the x87 control word are what it set, while the other
 * side set them all differently; that the TIB's StackBase, StackLimit and
 * DeallocationStack are the coroutine's on its stack and the thread's
 * again after; then a million plain switches, timed (printed, not checked).
 */
#include "../../src/win/win.h"
#include "win_test.h"

#include <string.h>
#include <windows.h>

void win_regs_switch(may__win_ctx *from, may__win_ctx *to, uint64_t seed, uint64_t out[29]);

#define ROUNDS 20000

static may__win_ctx main_ctx, co_ctx;
static may__win_stack co_stack;
static volatile long co_rounds;
static volatile uint64_t spin_count;

static void co_regs(void *arg)
{
    (void)arg;
    /* The TIB describes this stack now. */
    WCHECK_EQ(wteb(WTEB_STACK_BASE), co_stack.base);
    WCHECK_EQ(wteb(WTEB_STACK_LIMIT), co_stack.limit);
    WCHECK_EQ(wteb(WTEB_DEALLOC), co_stack.alloc);
    WCHECK(strcmp(may__win_stack_current_name(), "regs") == 0);
    uint64_t out[29];
    for (long i = 0;; i++) {
        /* Seeds differ from main's: odd multiples of 0x1000 apart. */
        uint64_t seed = 0x7000000000000000ull + (uint64_t)i * 0x2000 + 0x1000 + (i & 3);
        win_regs_switch(&co_ctx, &main_ctx, seed, out);
        check_regs(out, seed);
        WCHECK_EQ(wteb(WTEB_STACK_BASE), co_stack.base);
        WCHECK_EQ(wteb(WTEB_DEALLOC), co_stack.alloc);
        co_rounds = i + 1;
    }
}

static void co_spin(void *arg)
{
    (void)arg;
    for (;;) {
        spin_count++;
        may__win_ctx_switch(&co_ctx, &main_ctx);
    }
}

int main(void)
{
    void *base = wteb(WTEB_STACK_BASE), *limit = wteb(WTEB_STACK_LIMIT);
    void *dealloc = wteb(WTEB_DEALLOC);
    WCHECK(may__win_stack_current_name() == NULL);

    WCHECK_EQ(may__win_stack_alloc(&co_stack, 256 * 1024, 0, "regs"), 0);
    may__win_stack_ctx(&co_stack, &co_ctx, co_regs, NULL);
    uint64_t out[29];
    for (long i = 0; i < ROUNDS; i++) {
        uint64_t seed = 0x1000000000000000ull + (uint64_t)i * 0x2000 + ((i + 1) & 3);
        win_regs_switch(&main_ctx, &co_ctx, seed, out);
        check_regs(out, seed);
        WCHECK_EQ(wteb(WTEB_STACK_BASE), base);
        WCHECK_EQ(wteb(WTEB_STACK_LIMIT), limit);
        WCHECK_EQ(wteb(WTEB_DEALLOC), dealloc);
    }
    /* The coroutine finished ROUNDS - 1 rounds (its last switch is pending). */
    WCHECK_EQ(co_rounds, ROUNDS - 1);
    may__win_stack_free(&co_stack);
    printf("win_switch: %d round trips, all callee-saved state and the TIB preserved\n", ROUNDS);

    WCHECK_EQ(may__win_stack_alloc(&co_stack, 64 * 1024, 4096, "spin"), 0);
    may__win_stack_ctx(&co_stack, &co_ctx, co_spin, NULL);
    LARGE_INTEGER f, t0, t1;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&t0);
    for (int i = 0; i < 500000; i++)
        may__win_ctx_switch(&main_ctx, &co_ctx);
    QueryPerformanceCounter(&t1);
    WCHECK_EQ(spin_count, 500000);
    double ns = (double)(t1.QuadPart - t0.QuadPart) * 1e9 / (double)f.QuadPart;
    printf("win_switch: 1000000 switches in %.1f ms, %.1f ns each (under wine: not a Windows "
           "figure)\n",
           ns / 1e6, ns / 1e6);
    may__win_stack_free(&co_stack);
    return 0;
}
