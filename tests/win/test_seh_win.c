/* Windows: exceptions and stack walks on the library's coroutines.
 *   (no argument)  RtlCaptureStackBackTrace in a coroutine returns only
 *                  frames of this program: the walk ends at the coroutine's
 *                  outermost frame (the TIB's StackBase is the stack's top;
 *                  with it at the end of the reservation the walk read the
 *                  control block above the top as 60 "frames").
 *   "crash"        an access violation in a coroutine that nothing handles
 *                  is dispatched on the coroutine's stack and reaches the
 *                  program's SetUnhandledExceptionFilter; ctest checks the
 *                  filter's line.  Under wine the dispatcher calls the
 *                  filter itself when the walk ends at the coroutine's top;
 *                  whether Windows does is unconfirmed (docs/WINDOWS.md). */
#include "../test.h"

#include <windows.h>

static volatile int *volatile nowhere;

static LONG WINAPI filter(EXCEPTION_POINTERS *ep)
{
    fprintf(stderr, "top-level filter: exception %08lx in a coroutine\n",
            (unsigned long)ep->ExceptionRecord->ExceptionCode);
    fflush(stderr);
    return EXCEPTION_EXECUTE_HANDLER; /* end the process */
}

static __attribute__((noinline)) int walk(void)
{
    void *f[64];
    USHORT n = RtlCaptureStackBackTrace(0, 64, f, NULL);
    for (USHORT i = 0; i < n; i++) {
        HMODULE m;
        if (!GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                                    GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                                (LPCSTR)f[i], &m)) {
            fprintf(stderr, "frame %u of %u at %p is in no module\n", i, n, f[i]);
            return -1;
        }
    }
    return n;
}

static void *walker(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)walk();
}

static void *crasher(void *arg)
{
    (void)arg;
    *nowhere = 1;
    return NULL;
}

int main(int argc, char **argv)
{
    may_co_t *co;
    void *r;
    if (argc > 1 && strcmp(argv[1], "crash") == 0) {
        SetErrorMode(SEM_NOGPFAULTERRORBOX);
        SetUnhandledExceptionFilter(filter);
        ASSERT_EQ(may_spawn(&co, crasher, NULL, NULL), 0);
        may_join(co, NULL, MAY_FOREVER);
        fprintf(stderr, "not reached: the access violation was lost\n");
        return 1;
    }
    for (int i = 0; i < 100; i++) {
        ASSERT_EQ(may_spawn(&co, walker, NULL, NULL), 0);
        ASSERT_EQ(may_join(co, &r, MAY_FOREVER), MAY_DONE);
        ASSERT_GT((intptr_t)r, 2);
        ASSERT_LT((intptr_t)r, 16);
    }
    printf("ok\n");
    return 0;
}
