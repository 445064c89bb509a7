/* echo_client.c - an echo client that is also a load generator (a small wrk
 * for echo servers such as examples/echo.c).
 *
 *   echo_client host:port [connections [msg_size [seconds]]]
 *                                     (defaults 64, 64, 5)
 *
 * One coroutine per connection: connect (all of them first), then send
 * msg_size bytes and read them back, in a loop, until the time is up.  Each
 * connection keeps its own latency histogram (log buckets, 32 per power of
 * two: ~2% resolution) and the sum of its latencies; they are merged at the
 * end.  Prints the round trips per second and the latency percentiles and
 * mean (a round trip is timed from the start of the write to the end of
 * the read; with one connection, 1 / rps is the mean as well):
 *
 *   echo_client: 64 connections, 64-byte messages, 5.00 s
 *   round_trips 612345 rps 122469 errors 0
 *   latency_us p50 511.0 p90 702.0 p99 1010.0 max 4023 mean 522.4
 *
 * The worker count is $MAY_WORKERS (default: every CPU allowed). */
#include "may.h"
#include "usage.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sys/resource.h> /* Windows has no descriptor limit to raise */
#endif

#define SUB_BITS 5
#define SUB (1 << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB)

/* Bucket of a latency in ns: exact below SUB, else 32 per power of two. */
static int bucket_of(uint64_t v)
{
    if (v < SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - SUB_BITS;
    return (shift + 1) * SUB + (int)((v >> shift) & (SUB - 1));
}

/* The middle of a bucket's range, in ns. */
static double bucket_mid(int b)
{
    if (b < SUB)
        return b;
    int shift = b / SUB - 1;
    uint64_t lo = ((uint64_t)(SUB + b % SUB)) << shift;
    return (double)lo + (double)((uint64_t)1 << shift) / 2.0;
}

typedef struct conn {
    uint64_t hist[NBUCKETS];
    uint64_t count, max_ns, sum_ns;
    int err; /* the first error, or 0 */
} conn_t;

static const char *addr;
static size_t msg_size;
static int64_t end_time; /* set before start fires */
static may_event_t *start;
static may_wg_t *connected;

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    int fd = may_tcp_connect(addr, may_deadline_in(10000000000LL));
    may_wg_done(connected);
    if (fd < 0) {
        c->err = fd;
        return NULL;
    }
    may_tcp_set_nodelay(fd, true);
    char *out = malloc(msg_size), *in = malloc(msg_size);
    if (!out || !in) {
        c->err = -ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < msg_size; i++)
        out[i] = (char)('a' + i % 26);
    may_event_wait(start, MAY_FOREVER);
    while (may_now() < end_time) {
        int64_t t0 = may_now();
        ssize_t r = may_tcp_write_all(fd, out, msg_size, MAY_FOREVER);
        if (r >= 0)
            r = may_tcp_read_full(fd, in, msg_size, may_deadline_in(10000000000LL));
        if (r != (ssize_t)msg_size) {
            c->err = r < 0 ? (int)r : -EPIPE;
            break;
        }
        uint64_t ns = (uint64_t)(may_now() - t0);
        c->hist[bucket_of(ns)]++;
        c->count++;
        c->sum_ns += ns;
        if (ns > c->max_ns)
            c->max_ns = ns;
    }
done:
    free(out);
    free(in);
    may_tcp_close(fd);
    return NULL;
}

static double percentile(const uint64_t *hist, uint64_t total, double p)
{
    uint64_t want = (uint64_t)((double)total * p + 0.5), seen = 0;
    if (want < 1)
        want = 1;
    for (int b = 0; b < NBUCKETS; b++) {
        seen += hist[b];
        if (seen >= want)
            return bucket_mid(b);
    }
    return 0;
}

static const char usage[] =
    "usage: echo_client host:port [connections [msg_size [seconds]]]\n"
    "  host:port    the echo server, e.g. 127.0.0.1:8080\n"
    "  connections  connections, one coroutine each (default 64)\n"
    "  msg_size     bytes per message (default 64)\n"
    "  seconds      how long to run (default 5; decimals allowed)\n"
    "The worker count is $MAY_WORKERS (default: every CPU allowed).\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 4, usage);
    if (argc < 2)
        usage_fail(usage, "missing argument", "host:port");
    addr = argv[1];
    long nconns = argc > 2 ? usage_long(argv[2], 1, 1000000, usage) : 64;
    long size = argc > 3 ? usage_long(argv[3], 1, 1L << 30, usage) : 64;
    double secs = argc > 4 ? usage_positive(argv[4], 1e6, usage) : 5;
    msg_size = (size_t)size;
#ifndef _WIN32
    /* one fd per connection, plus a few */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconns + 64 &&
        rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
#endif
    conn_t *conns = calloc((size_t)nconns, sizeof *conns);
    may_co_t **cos = calloc((size_t)nconns, sizeof *cos);
    if (!conns || !cos || may_event_new(&start) < 0 || may_wg_new(&connected) < 0) {
        fprintf(stderr, "echo_client: out of memory\n");
        return 1;
    }
    may_wg_add(connected, nconns);
    for (long i = 0; i < nconns; i++) {
        int r = may_spawn(&cos[i], conn_main, &conns[i], NULL);
        if (r < 0) {
            fprintf(stderr, "echo_client: spawn: error %d\n", -r);
            return 1;
        }
    }
    may_wg_wait(connected, MAY_FOREVER);
    int64_t t0 = may_now();
    end_time = t0 + (int64_t)(secs * 1e9);
    may_event_fire(start);
    uint64_t *hist = calloc(NBUCKETS, sizeof *hist);
    uint64_t total = 0, max_ns = 0;
    double sum_ns = 0;
    long errors = 0;
    int first_err = 0;
    for (long i = 0; i < nconns; i++) {
        may_join(cos[i], NULL, MAY_FOREVER);
        conn_t *c = &conns[i];
        for (int b = 0; b < NBUCKETS; b++)
            hist[b] += c->hist[b];
        total += c->count;
        sum_ns += (double)c->sum_ns;
        if (c->max_ns > max_ns)
            max_ns = c->max_ns;
        if (c->err) {
            errors++;
            if (!first_err)
                first_err = c->err;
        }
    }
    double elapsed = (double)(may_now() - t0) / 1e9;
    printf("echo_client: %ld connections, %zu-byte messages, %.2f s\n", nconns, msg_size,
           elapsed);
    printf("round_trips %llu rps %.0f errors %ld\n", (unsigned long long)total,
           (double)total / elapsed, errors);
    if (errors)
        fprintf(stderr, "echo_client: %ld connections failed (first error: %s)\n", errors,
                strerror(-first_err));
    if (total)
        printf("latency_us p50 %.1f p90 %.1f p99 %.1f max %.0f mean %.1f\n",
               percentile(hist, total, 0.50) / 1e3, percentile(hist, total, 0.90) / 1e3,
               percentile(hist, total, 0.99) / 1e3, (double)max_ns / 1e3,
               sum_ns / (double)total / 1e3);
    free(hist);
    free(conns);
    free(cos);
    may_event_free(start);
    may_wg_free(connected);
    return total ? 0 : 1;
}
