/*
 * win_overflow.c - a coroutine named "deep-recursor" recurses without end
 * on a 256 KiB stack.  The vectored handler of stack_win.c must print
 * "may: stack overflow in coroutine "deep-recursor" ..." on stderr and end
 * the process with STATUS_STACK_OVERFLOW (0xC00000FD; a shell under wine
 * sees 253, its low byte).  scripts/win-test.sh checks both; exit code 0
 * or 1 from here is a failure.  The stack has only its top pages
 * committed (the system grows it down to the headroom, then commits the
 * guarantee for the handler); with the argument "full" it is committed in
 * full.  win-test.sh runs both.
 */
#include "../../src/win/win.h"
#include "win_test.h"

#include <string.h>
#include <windows.h>

static may__win_ctx main_ctx, co_ctx;
static may__win_stack co_stack;
static volatile int stop_at = -1; /* never reached: hides the endless recursion from gcc */

__attribute__((noinline)) static int recurse(int n)
{
    volatile char pad[512];
    pad[0] = (char)n;
    int r = n == stop_at ? 0 : recurse(n + 1);
    pad[1] = 1; /* after the call: no tail call */
    return r + pad[1];
}

static void co_main(void *arg)
{
    (void)arg;
    recurse(0);
    may__win_ctx_switch(&co_ctx, &main_ctx);
}

int main(int argc, char **argv)
{
    WCHECK_EQ(may__win_stack_thread_init(), 0);
    WCHECK_EQ(may__win_overflow_install(), 0);
    int full = argc > 1 && strcmp(argv[1], "full") == 0;
    WCHECK_EQ(may__win_stack_alloc(&co_stack, 256 * 1024, full ? 0 : 8192, "deep-recursor"), 0);
    may__win_stack_ctx(&co_stack, &co_ctx, co_main, NULL);
    may__win_ctx_switch(&main_ctx, &co_ctx);
    fprintf(stderr, "win_overflow: the recursion returned\n");
    return 1;
}
