/*
 * unsupported_win.c - the calls of include/may.h that have no Windows
 * implementation: each returns -ENOTSUP (or does nothing), so a portable
 * program builds and learns at run time.  The table in docs/WINDOWS.md
 * lists them with the reason:
 *
 *   may_signal_*    POSIX signals do not exist; Windows has console
 *                   control events (SetConsoleCtrlHandler), a different API
 *   may_process_*   not yet: CreateProcess with pipes on the completion
 *                   port and a wait on the process handle would do it
 *   may_dump_on_signal  no signals (may_dump itself works)
 */
#include "../internal.h"

int may_signal_new(may_signal_t **s, const int *sigs, size_t n, size_t queue)
{
    (void)sigs, (void)n, (void)queue;
    if (s)
        *s = NULL;
    return -ENOTSUP;
}

int may_signal_wait(may_signal_t *s, int64_t deadline)
{
    (void)s, (void)deadline;
    return -ENOTSUP;
}

may_chan_t *may_signal_chan(may_signal_t *s)
{
    (void)s;
    return NULL;
}

uint64_t may_signal_dropped(may_signal_t *s)
{
    (void)s;
    return 0;
}

void may_signal_free(may_signal_t *s)
{
    (void)s;
}

int may_process_spawn_sized(may_process_t **p, const char *file, const char *const argv[],
                            const may_process_opts_t *opts, size_t opts_size)
{
    (void)file, (void)argv, (void)opts, (void)opts_size;
    if (p)
        *p = NULL;
    return -ENOTSUP;
}

pid_t may_process_pid(const may_process_t *p)
{
    (void)p;
    return -1;
}

int may_process_stdio(const may_process_t *p, int i)
{
    (void)p, (void)i;
    return -ENOTSUP;
}

int may_process_close_stdio(may_process_t *p, int i)
{
    (void)p, (void)i;
    return -ENOTSUP;
}

int may_process_take_stdio(may_process_t *p, int i)
{
    (void)p, (void)i;
    return -ENOTSUP;
}

int may_process_wait(may_process_t *p, int *status, int64_t deadline)
{
    (void)p, (void)status, (void)deadline;
    return -ENOTSUP;
}

int may_process_kill(may_process_t *p, int sig)
{
    (void)p, (void)sig;
    return -ENOTSUP;
}

void may_process_free(may_process_t *p)
{
    (void)p;
}
