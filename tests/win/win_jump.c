/*
 * win_jump.c - the inline Windows x64 switch (src/arch/x86_64/jump_win64.h):
 *
 * - registers: win_regs.S, built with -DWIN_REGS_TARGET=win_jump_switch,
 *   sets every callee-saved register (rbx, rbp, rdi, rsi, r12-r15,
 *   xmm6-15 both halves), MXCSR and the x87 control word, calls a function
 *   that switches with may__win_ctx_jump, and checks them after; the other
 *   side sets them all differently (win_switch.c's check, through the
 *   compiler's saves of the clobbered registers this time); the TIB is the
 *   coroutine's on its stack and the thread's after; every switch hands
 *   over the word its resumer passed;
 * - StackLimit: a coroutine on a stack committed one page at a time grows
 *   it, switches away and back, and finds the grown StackLimit, not the
 *   one it started with; main resumes it with the out-of-line switch, so
 *   each switch resumes a context the other saved;
 * - a million switches with the handoff checked on each, timed next to a
 *   million out-of-line switches (printed, not checked).
 */
#include "../../src/arch/x86_64/jump_win64.h"
#include "../../src/win/win.h"
#include "win_test.h"

#include <string.h>
#include <windows.h>

void win_regs_switch(may__win_ctx *from, may__win_ctx *to, uint64_t seed, uint64_t out[29]);

#define ROUNDS 20000
#define SWITCHES 1000000

static may__win_ctx main_ctx, co_ctx;
static may__win_stack co_stack;
static volatile long co_rounds;
static volatile uintptr_t last_pass;
static volatile long bad_handoffs;

/* win_regs.S calls this where win_switch's calls may__win_ctx_switch. */
__attribute__((noinline)) void win_jump_switch(may__win_ctx *from, may__win_ctx *to);
void win_jump_switch(may__win_ctx *from, may__win_ctx *to)
{
    uintptr_t v = last_pass + 1;
    last_pass = v;
    void *got = may__win_ctx_jump(from, to, (void *)v);
    /* The resumer set last_pass to what it passed. */
    if ((uintptr_t)got != last_pass)
        bad_handoffs++;
}

static void co_regs(void *arg)
{
    (void)arg;
    WCHECK_EQ(wteb(WTEB_STACK_BASE), co_stack.base);
    WCHECK_EQ(wteb(WTEB_STACK_LIMIT), co_stack.limit);
    WCHECK_EQ(wteb(WTEB_DEALLOC), co_stack.alloc);
    uint64_t out[29];
    for (long i = 0;; i++) {
        uint64_t seed = 0x7000000000000000ull + (uint64_t)i * 0x2000 + 0x1000 + (i & 3);
        win_regs_switch(&co_ctx, &main_ctx, seed, out);
        check_regs(out, seed);
        WCHECK_EQ(wteb(WTEB_STACK_BASE), co_stack.base);
        WCHECK_EQ(wteb(WTEB_STACK_LIMIT), co_stack.limit);
        WCHECK_EQ(wteb(WTEB_DEALLOC), co_stack.alloc);
        co_rounds = i + 1;
    }
}

static char *grown_limit;

/* 64 KiB of frame, every page of it written (so that no compiler can
 * shrink the array): the stack grows. */
__attribute__((noinline)) static int grow(void)
{
    volatile char a[64 * 1024];
    for (size_t i = 0; i < sizeof a; i += 512)
        a[i] = 1;
    a[sizeof a - 1] = 2;
    return a[0] + a[sizeof a - 1];
}

static void co_grow(void *arg)
{
    (void)arg;
    char *limit0 = wteb(WTEB_STACK_LIMIT);
    WCHECK_EQ(grow(), 3);
    grown_limit = wteb(WTEB_STACK_LIMIT);
    WCHECK((uintptr_t)grown_limit <= (uintptr_t)limit0 - 60 * 1024);
    may__win_ctx_jump(&co_ctx, &main_ctx, NULL);
    /* Resumed by may__win_ctx_switch: the TIB is this stack's, grown. */
    WCHECK_EQ(wteb(WTEB_STACK_LIMIT), grown_limit);
    WCHECK_EQ(wteb(WTEB_STACK_BASE), co_stack.base);
    WCHECK_EQ(wteb(WTEB_DEALLOC), co_stack.alloc);
    may__win_ctx_jump(&co_ctx, &main_ctx, NULL);
    WCHECK(0);
}

static void co_spin(void *arg)
{
    uintptr_t v = (uintptr_t)arg; /* 0: a new context gets only its argument */
    for (;;)
        v = (uintptr_t)may__win_ctx_jump(&co_ctx, &main_ctx, (void *)(v + 1));
}

static void co_spin_switch(void *arg)
{
    (void)arg;
    for (;;)
        may__win_ctx_switch(&co_ctx, &main_ctx);
}

static double now_ns(void)
{
    LARGE_INTEGER f, t;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&t);
    return (double)t.QuadPart * 1e9 / (double)f.QuadPart;
}

int main(void)
{
    void *base = wteb(WTEB_STACK_BASE), *limit = wteb(WTEB_STACK_LIMIT);
    void *dealloc = wteb(WTEB_DEALLOC);
    WCHECK_EQ(may__win_stack_thread_init(), 0);
    WCHECK_EQ(may__win_overflow_install(), 0);

    /* Registers, the TIB and the handoff. */
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
    WCHECK_EQ(co_rounds, ROUNDS - 1);
    /* Main's first switch started the coroutine (no handoff there). */
    WCHECK_EQ(bad_handoffs, 0);
    may__win_stack_free(&co_stack);
    printf("win_jump: %d round trips, all callee-saved state, the TIB and the handoff "
           "preserved\n",
           ROUNDS);

    /* A grown StackLimit survives the switch; the two switches mix. */
    WCHECK_EQ(may__win_stack_alloc(&co_stack, 256 * 1024, 4096, "grow"), 0);
    may__win_stack_ctx(&co_stack, &co_ctx, co_grow, NULL);
    may__win_ctx_switch(&main_ctx, &co_ctx);
    WCHECK(grown_limit != NULL);
    WCHECK_EQ(wteb(WTEB_STACK_LIMIT), limit);
    WCHECK_EQ(wteb(WTEB_STACK_BASE), base);
    may__win_ctx_switch(&main_ctx, &co_ctx);
    WCHECK_EQ(wteb(WTEB_STACK_LIMIT), limit);
    may__win_stack_free(&co_stack);
    printf("win_jump: StackLimit %p after growth kept across switches (both switches mixed)\n",
           (void *)grown_limit);

    /* A million switches each way of switching. */
    WCHECK_EQ(may__win_stack_alloc(&co_stack, 64 * 1024, 4096, "spin"), 0);
    may__win_stack_ctx(&co_stack, &co_ctx, co_spin, NULL);
    long bad = 0;
    double t0 = now_ns();
    for (uintptr_t i = 0; i < SWITCHES / 2; i++)
        bad += (uintptr_t)may__win_ctx_jump(&main_ctx, &co_ctx, (void *)i) != i + 1;
    double t_jump = now_ns() - t0;
    WCHECK_EQ(bad, 0);
    may__win_stack_free(&co_stack);

    WCHECK_EQ(may__win_stack_alloc(&co_stack, 64 * 1024, 4096, "spin-switch"), 0);
    may__win_stack_ctx(&co_stack, &co_ctx, co_spin_switch, NULL);
    t0 = now_ns();
    for (int i = 0; i < SWITCHES / 2; i++)
        may__win_ctx_switch(&main_ctx, &co_ctx);
    double t_switch = now_ns() - t0;
    may__win_stack_free(&co_stack);
    printf("win_jump: %d switches: inline %.1f ns each, out-of-line %.1f ns each (under wine: "
           "not a Windows figure)\n",
           SWITCHES, t_jump / SWITCHES, t_switch / SWITCHES);
    return 0;
}
