/* errno_probe.c - compiled at -O2 on its own (tests/hook/CMakeLists.txt):
 * code as a third-party library has it, which takes errno's address once
 * (glibc declares __errno_location const) and reads errno through it
 * after a call that may have parked the coroutine. */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((noinline)) int errno_probe_read(int fd, long *before, long *after)
{
    int *e = &errno; /* before the call, as -O2 code may compute it */
    *e = 0;
    *before = syscall(SYS_gettid); /* not pthread_self: it is const, -O2 folds it */
    char c;
    ssize_t n = read(fd, &c, 1);
    *after = syscall(SYS_gettid);
    return n < 0 ? *e : 0;
}
