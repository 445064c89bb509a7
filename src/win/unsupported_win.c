/*
 * unsupported_win.c - the calls of include/may.h that have no Windows
 * implementation: each returns -ENOTSUP (or does nothing), so a portable
 * program builds and learns at run time.  The table in docs/WINDOWS.md
 * lists them with the reason:
 *
 *   may_signal_*    POSIX signals do not exist; Windows has console
 *                   control events (SetConsoleCtrlHandler), a different API
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
