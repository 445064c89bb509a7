/* cat.c - general I/O: stdin to stdout through the fd wrapper.
 *
 *   cat < in > out        (or in a pipeline)
 *
 * A coroutine copies fd 0 to fd 1 with may_read / may_write: on a pipe,
 * socket or terminal a read or write that would block parks the coroutine
 * (its worker runs others) instead of blocking the thread.  A regular file
 * cannot be registered with the poller (epoll refuses it); may_read and
 * may_write then just run the system call, which never waits for
 * readiness, so files work too.  Should registering fail otherwise (e.g. an
 * fd the runtime refuses), cat_copy falls back to plain read(2)/write(2).
 *
 * The fds are left open (they are the process's stdin/stdout; on exit the
 * kernel closes them).  Note that registration sets O_NONBLOCK on them,
 * which a terminal shares with the other processes using it.
 * tests/test_io_cat.c includes this file (CAT_NO_MAIN) and runs cat_copy
 * between pipes. */
#include "may.h"
#include "usage.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Plain read(2) that retries EINTR. */
static ssize_t plain_read(int fd, void *buf, size_t n)
{
    ssize_t r;
    do
        r = read(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

static ssize_t plain_write(int fd, const void *buf, size_t n)
{
    ssize_t r;
    do
        r = write(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

static long long copy(int in, int out, char *buf, size_t size);

/* Copy in to out until end of file: the bytes copied, or -errno. */
static long long cat_copy(int in, int out)
{
    enum { BUF = 65536 };
    char *buf = malloc(BUF); /* off the coroutine's 64 KiB stack */
    if (!buf)
        return -ENOMEM;
    long long total = copy(in, out, buf, BUF);
    free(buf);
    return total;
}

static long long copy(int in, int out, char *buf, size_t size)
{
    long long total = 0;
    bool plain_in = false, plain_out = false;
    for (;;) {
        ssize_t n = plain_in ? plain_read(in, buf, size)
                             : may_read(in, buf, size, MAY_FOREVER);
        if (n == -EMFILE || n == -ENOMEM || n == -EINVAL) {
            /* the runtime could not register the fd: plain I/O instead */
            if (plain_in)
                return n;
            plain_in = true;
            continue;
        }
        if (n < 0)
            return n;
        if (n == 0)
            return total;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = plain_out ? plain_write(out, buf + off, (size_t)(n - off))
                                  : may_write(out, buf + off, (size_t)(n - off), MAY_FOREVER);
            if ((w == -EMFILE || w == -ENOMEM || w == -EINVAL) && !plain_out) {
                plain_out = true;
                continue;
            }
            if (w < 0)
                return w;
            off += w;
        }
        total += n;
    }
}

typedef struct cat_job {
    int in, out;
    long long result;
} cat_job_t;

static void *cat_co(void *arg)
{
    cat_job_t *j = arg;
    j->result = cat_copy(j->in, j->out);
    return NULL;
}

#ifndef CAT_NO_MAIN
static const char usage[] =
    "usage: cat < in > out\n"
    "Copies stdin to stdout through coroutine I/O (pipes, sockets, terminals, files).\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 0, usage);
    cat_job_t job = {0, 1, 0};
    may_co_t *co;
    int r = may_spawn(&co, cat_co, &job, NULL);
    if (r < 0) {
        fprintf(stderr, "cat: spawn: %s\n", strerror(-r));
        return 1;
    }
    may_join(co, NULL, MAY_FOREVER);
    if (job.result < 0) {
        fprintf(stderr, "cat: %s\n", strerror((int)-job.result));
        return 1;
    }
    return 0;
}
#endif
