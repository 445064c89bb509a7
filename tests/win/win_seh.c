/*
 * win_seh.c - exceptions and unwinding on a coroutine stack (no C++):
 *  - RaiseException on the coroutine reaches a vectored handler, which sees
 *    the coroutine's stack in the TIB and continues execution;
 *  - an access violation on the coroutine is caught by a vectored handler
 *    that steps the faulting instruction over;
 *  - RtlVirtualUnwind walks from deep in the coroutine to its outermost
 *    frame (may__win_ctx_boot) and ends with rip 0 at rsp = StackBase;
 *    RtlCaptureStackBackTrace ends there too;
 *  - longjmp out of a deep recursion, which msvcrt does with RtlUnwindEx:
 *    every frame it unwinds must lie between StackLimit and StackBase.
 */
#include "../../src/win/win.h"
#include "win_test.h"

#include <setjmp.h>
#include <string.h>
#include <windows.h>

#define CODE_TEST 0xE0ADBEEFu

static may__win_ctx main_ctx, co_ctx;
static may__win_stack co_stack;
static volatile int raised_seen, av_seen, done;
static void *volatile raised_base;
static const char *volatile raised_name;
static jmp_buf jb;

static LONG CALLBACK veh(EXCEPTION_POINTERS *ep)
{
    if (ep->ExceptionRecord->ExceptionCode == CODE_TEST) {
        raised_seen++;
        raised_base = wteb(WTEB_STACK_BASE);
        raised_name = may__win_stack_current_name();
        return EXCEPTION_CONTINUE_EXECUTION;
    }
    if (ep->ExceptionRecord->ExceptionCode == EXCEPTION_ACCESS_VIOLATION &&
        ep->ExceptionRecord->ExceptionInformation[1] == 0x10) {
        av_seen++;
        /* The faulting load is win_seh_fault's "movl 0x10, %eax" (8 bytes
         * with its absolute 32-bit address); step over it. */
        ep->ContextRecord->Rip += 7;
        ep->ContextRecord->Rax = 42;
        return EXCEPTION_CONTINUE_EXECUTION;
    }
    return EXCEPTION_CONTINUE_SEARCH;
}

/* A load from address 0x10: movl 0x10, %eax is 8b 04 25 10 00 00 00. */
__attribute__((noinline)) static int win_seh_fault(void)
{
    int v;
    __asm__ volatile(".byte 0x8b, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00" : "=a"(v) : : "memory");
    return v;
}

/* Unwind from here to the end of the stack; returns the frame count. */
__attribute__((noinline)) static int walk(void)
{
    CONTEXT c;
    RtlCaptureContext(&c);
    int frames = 0;
    while (c.Rip) {
        DWORD64 img;
        PRUNTIME_FUNCTION f = RtlLookupFunctionEntry(c.Rip, &img, NULL);
        if (f) {
            void *hd;
            DWORD64 est;
            RtlVirtualUnwind(UNW_FLAG_NHANDLER, img, c.Rip, f, &c, &hd, &est, NULL);
        } else { /* a leaf: the return address is at rsp */
            c.Rip = *(DWORD64 *)c.Rsp;
            c.Rsp += 8;
        }
        WCHECK(++frames < 100);
    }
    /* The walk ended at the zero above may__win_ctx_boot's frame. */
    WCHECK_EQ(c.Rsp, co_stack.base);
    return frames;
}

__attribute__((noinline)) static int deep(int n, int what)
{
    volatile char pad[256];
    pad[0] = (char)n;
    if (n == 0) {
        if (what == 0)
            return walk();
        if (what == 1) {
            void *bt[64];
            return RtlCaptureStackBackTrace(0, 64, bt, NULL);
        }
        longjmp(jb, 7);
    }
    int r = deep(n - 1, what);
    pad[1] = 1; /* after the call: no tail call, one frame per level */
    return r + pad[1] - 1;
}

static void co_main(void *arg)
{
    (void)arg;
    RaiseException(CODE_TEST, 0, 0, NULL);
    WCHECK_EQ(raised_seen, 1);
    WCHECK_EQ(raised_base, co_stack.base);
    WCHECK(raised_name && strcmp(raised_name, "seh") == 0);

    WCHECK_EQ(win_seh_fault(), 42);
    WCHECK_EQ(av_seen, 1);

    int frames = deep(20, 0);
    /* walk, 21 deep (the compiler may inline a level), co_main,
     * may__win_ctx_boot. */
    WCHECK(frames >= 20 && frames < 40);
    int bt = deep(20, 1);
    WCHECK(bt >= 20 && bt < 64);
    printf("win_seh: unwound %d frames to the stack top; backtrace %d frames\n", frames, bt);

    volatile int jumps = 0;
    int r = setjmp(jb);
    if (r == 0) {
        jumps++;
        deep(50, 2);
        WCHECK(0);
    }
    WCHECK_EQ(r, 7);
    WCHECK_EQ(jumps, 1);

    done = 1;
    may__win_ctx_switch(&co_ctx, &main_ctx);
    WCHECK(0);
}

int main(void)
{
    void *base = wteb(WTEB_STACK_BASE);
    WCHECK(AddVectoredExceptionHandler(1, veh) != NULL);
    WCHECK_EQ(may__win_stack_alloc(&co_stack, 256 * 1024, 0, "seh"), 0);
    may__win_stack_ctx(&co_stack, &co_ctx, co_main, NULL);
    may__win_ctx_switch(&main_ctx, &co_ctx);
    WCHECK(done);
    WCHECK_EQ(wteb(WTEB_STACK_BASE), base);
    /* And the same on the thread's own stack, where the TIB was always right. */
    RaiseException(CODE_TEST, 0, 0, NULL);
    WCHECK_EQ(raised_seen, 2);
    WCHECK_EQ(raised_base, base);
    WCHECK(raised_name == NULL);
    may__win_stack_free(&co_stack);
    printf("win_seh: vectored handlers, unwinding and longjmp on a coroutine stack work\n");
    return 0;
}
