/*
 * hook_cost.c - what libmay_hook adds to a call that need not wait.
 *
 * Linked with libmay_hook before libc, so read() and write() are the
 * hooks; libc's own functions (dlsym on libc.so.6) are the baseline.  Each
 * case runs ITERS calls, RUNS times, and prints the median ns per call:
 *   nb-empty     read of an empty pipe the application made non-blocking
 *                (EAGAIN at once: the pass-through path)
 *   blk-pair     write 1 byte + read 1 byte on a pipe the application left
 *                blocking (the hooks made it non-blocking underneath: the
 *                cooperative path, with data there, so no wait)
 * from a plain thread (the hooks only check may_self()) and from a
 * coroutine.  Not a test: nothing is asserted.
 *     RESULT hook_cost <case>/<where>/<plain|hooked> <ns> ns
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include "bench_common.h"

#define RUNS 7

static long iters = 1000000;
static ssize_t (*libc_read)(int, void *, size_t);
static ssize_t (*libc_write)(int, const void *, size_t);
static int nb[2], blk[2];

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double once(int kase, int hooked)
{
    char c = 0;
    int64_t t0 = bench_now();
    for (long i = 0; i < iters; i++) {
        if (kase == 0) {
            if (hooked)
                (void)!read(nb[0], &c, 1);
            else
                (void)!libc_read(nb[0], &c, 1);
        } else if (hooked) {
            (void)!write(blk[1], &c, 1);
            (void)!read(blk[0], &c, 1);
        } else {
            (void)!libc_write(blk[1], &c, 1);
            (void)!libc_read(blk[0], &c, 1);
        }
    }
    return (double)(bench_now() - t0) / (double)iters;
}

static void measure(const char *where)
{
    static const char *const kname[2] = { "nb-empty", "blk-pair" };
    for (int k = 0; k < 2; k++) {
        double m[2], v[2][RUNS];
        for (int r = 0; r < RUNS; r++) /* interleaved: drift hits both */
            for (int h = 0; h < 2; h++)
                v[h][r] = once(k, h);
        for (int h = 0; h < 2; h++) {
            qsort(v[h], RUNS, sizeof *v[h], cmp);
            m[h] = v[h][RUNS / 2];
            printf("RESULT hook_cost %s/%s/%s %.1f ns\n", kname[k], where,
                   h ? "hooked" : "plain", m[h]);
        }
        printf("  %s %s: %+.1f ns per call\n", kname[k], where, (m[1] - m[0]) / (k ? 2 : 1));
    }
}

static void *in_co(void *arg)
{
    (void)arg;
    measure("coroutine");
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        iters = atol(argv[1]);
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (!libc) {
        fprintf(stderr, "no libc.so.6\n");
        return 1;
    }
    libc_read = (ssize_t(*)(int, void *, size_t))dlsym(libc, "read");
    libc_write = (ssize_t(*)(int, const void *, size_t))dlsym(libc, "write");
    if (pipe2(nb, O_NONBLOCK) < 0 || pipe(blk) < 0)
        return 1;
    /* the blocking pipe: classified (and made non-blocking underneath)
     * by a first hooked call in a coroutine */
    may_co_t *co;
    BENCH_CHECK(may_spawn(&co, in_co, NULL, NULL));
    BENCH_CHECK(may_join(co, NULL, MAY_FOREVER));
    measure("thread");
    return 0;
}
