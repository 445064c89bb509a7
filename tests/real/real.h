/* real.h - the harness of the proofs in tests/real/: unmodified blocking
 * client libraries from Debian, run in coroutines against real servers.
 *
 * Each proof (real_hiredis.c, real_pq.c, real_curl.c, real_mariadb.c)
 * supplies one function, a request that takes the server about 100 ms
 * (BLPOP with a 0.1 s timeout, SELECT pg_sleep(0.1), GET /sleep?ms=100,
 * SELECT SLEEP(0.1)) and checks its own reply.  real_main runs it on ONE
 * worker (may_configure .workers = 1) in N coroutines (default 100), each
 * opening its own connection, with a ticker coroutine on the same worker
 * that sleeps 10 ms at a time, and checks the mode it was asked for:
 *
 *   parallel  (linked with libmay_hook: the library's read, poll, connect
 *             ... park only the coroutine)  every request succeeds, all N
 *             finish together in under REAL_PARALLEL_MAX_MS (1.5 s: a
 *             serial run takes N * 100 ms = 10 s; the bound is generous
 *             for sanitizers on a 2-vCPU VM), the ticker got at least 10 %
 *             of the ticks it would get alone and never waited more than
 *             REAL_GAP_MAX_MS (500 ms, five requests' worth) between two.
 *             The gap is not 0: the N coroutines each run up to their
 *             first wait before the ticker's turn comes (libcurl's set-up
 *             is about 0.5 ms a request: 50 ms for 100), and the server
 *             shares the 2 CPUs (PostgreSQL forks 100 backends: 30-60 ms
 *             gaps, 200 ms under ASan); the control starves it for the
 *             whole run (>= 1 s for 10 requests).
 *   serial    (the same source linked WITHOUT the hook: the control) every
 *             request succeeds, but they ran one after another: the run
 *             took at least 90 % of N * 100 ms, and the ticker starved for
 *             at least one whole request.
 *   report    print the figures, check only the replies.
 *
 *   real_X [n [parallel|serial|report]]
 *
 * The hand-off of blocked workers (docs/CAVEATS.md rule 1) is turned off
 * (.no_handoff), or it would run blocked calls on spare threads and the
 * control would not be serial, nor would the proof need the hook;
 * REAL_HANDOFF=1 in the environment turns it on to compare.
 *
 * Exit status 0 pass, 1 fail, 77 skip (the server's connection variables
 * are not set: the program was not run under tests/servers/with_server.sh).
 * Every run prints one line with its figures, e.g.
 *   real_pq: 100 x 100 ms on 1 worker: 0.183 s; ticker 17/18 ticks, max gap 14 ms; read() from libmay_hook.so
 */
#ifndef MAY_REAL_H
#define MAY_REAL_H

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "may.h"

#define REAL_SKIP 77
#define REAL_REQUEST_MS 100      /* what each request takes the server */
#define REAL_PARALLEL_MAX_MS 1500
#define REAL_GAP_MAX_MS 500
#define REAL_TICK_MS 10

/* One request of coroutine i (0 <= i < n): connect, ask, check the reply,
 * disconnect.  0, or -1 with a message in err. */
typedef int (*real_request_fn)(int i, char *err, size_t errlen);

/* The first of the environment variables named that is set and not empty. */
static inline const char *real_env(const char *a, const char *b)
{
    const char *v = getenv(a);
    if ((!v || !*v) && b)
        v = getenv(b);
    return v && *v ? v : NULL;
}

/* ---- the ticker --------------------------------------------------------- */

static atomic_bool real_stop;
static long real_ticks;         /* written by the ticker only; read after join */
static int64_t real_max_gap;    /* ns */

static void *real_ticker(void *arg)
{
    (void)arg;
    int64_t last = may_now();
    for (;;) {
        int r = may_sleep(REAL_TICK_MS * 1000000LL);
        int64_t now = may_now(); /* the gap up to the stop counts too */
        if (now - last > real_max_gap)
            real_max_gap = now - last;
        last = now;
        if (r < 0 || atomic_load_explicit(&real_stop, memory_order_relaxed))
            break;
        real_ticks++;
    }
    return NULL;
}

/* ---- the requests ------------------------------------------------------- */

typedef struct real_slot {
    real_request_fn fn;
    int i;
    int rc;
    int64_t ns;                 /* this request's own time */
    char err[200];
} real_slot_t;

static void *real_one(void *arg)
{
    real_slot_t *s = arg;
    int64_t t0 = may_now();
    s->rc = s->fn(s->i, s->err, sizeof s->err);
    s->ns = may_now() - t0;
    return NULL;
}

/* Where the dynamic linker finds read() for the libraries: libmay_hook
 * when the hook is in effect (or the executable itself, where a sanitizer
 * runtime defines it and forwards to the next definition), libc when not. */
static inline const char *real_read_owner(void)
{
    Dl_info di;
    void *p = dlsym(RTLD_DEFAULT, "read");
    if (!p || !dladdr(p, &di) || !di.dli_fname)
        return "?";
    const char *s = strrchr(di.dli_fname, '/');
    return s ? s + 1 : di.dli_fname;
}

static inline int real_main(int argc, char **argv, const char *name, real_request_fn fn)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    const char *mode = argc > 2 ? argv[2] : "parallel";
    if (n < 1 || n > 10000 ||
        (strcmp(mode, "parallel") && strcmp(mode, "serial") && strcmp(mode, "report"))) {
        fprintf(stderr, "usage: %s [n [parallel|serial|report]]\n", name);
        return 2;
    }
    /* Hand-off (docs/CAVEATS.md rule 1) would let blocked calls run on
     * spare threads, with or without the hook: off, so that what is
     * measured is the hook alone.  REAL_HANDOFF=1 turns it on, to compare. */
    const char *ho = getenv("REAL_HANDOFF");
    bool handoff = ho && atoi(ho) == 1;
    int r = may_configure(&(may_config_t){ .workers = 1, .no_handoff = !handoff });
    if (r < 0) {
        fprintf(stderr, "%s: may_configure: %s\n", name, strerror(-r));
        return 1;
    }
    real_slot_t *slot = calloc((size_t)n, sizeof *slot);
    may_co_t **co = calloc((size_t)n, sizeof *co);
    may_co_t *ticker;
    if (!slot || !co || may_spawn(&ticker, real_ticker, NULL, &(may_spawn_opts_t){ .name = "ticker" }) < 0) {
        fprintf(stderr, "%s: out of memory\n", name);
        return 1;
    }
    may_sleep(REAL_TICK_MS * 1000000LL); /* the ticker is in its first sleep */
    int64_t t0 = may_now();
    for (int i = 0; i < n; i++) {
        slot[i].fn = fn;
        slot[i].i = i;
        r = may_spawn(&co[i], real_one, &slot[i], &(may_spawn_opts_t){ .name = "request" });
        if (r < 0) {
            fprintf(stderr, "%s: spawn: %s\n", name, strerror(-r));
            return 1;
        }
    }
    for (int i = 0; i < n; i++)
        may_join(co[i], NULL, MAY_FOREVER);
    int64_t wall = may_now() - t0;
    atomic_store_explicit(&real_stop, true, memory_order_relaxed);
    may_cancel(ticker);
    may_join(ticker, NULL, MAY_FOREVER);

    int failed = 0;
    int64_t slowest = 0, fastest = INT64_MAX;
    for (int i = 0; i < n; i++) {
        if (slot[i].rc != 0) {
            if (failed++ < 5)
                fprintf(stderr, "%s: request %d: %s\n", name, i, slot[i].err);
        }
        slowest = slot[i].ns > slowest ? slot[i].ns : slowest;
        fastest = slot[i].ns < fastest ? slot[i].ns : fastest;
    }
    long want_ticks = (long)(wall / (REAL_TICK_MS * 1000000LL));
    may_stats_t st = { .handoffs = 0 };
    may_stats(&st);
    printf("%s: %d x %d ms on 1 worker (%s): %.3f s; each %.0f..%.0f ms; "
           "ticker %ld/%ld ticks, max gap %.0f ms; read() from %s; hand-off %s (%llu); "
           "%d failed\n",
           name, n, REAL_REQUEST_MS, mode, (double)wall / 1e9, (double)fastest / 1e6,
           (double)slowest / 1e6, real_ticks, want_ticks, (double)real_max_gap / 1e6,
           real_read_owner(), handoff ? "on" : "off", (unsigned long long)st.handoffs, failed);
    fflush(stdout);
    int bad = failed > 0;
    if (strcmp(mode, "parallel") == 0) {
        if (wall >= REAL_PARALLEL_MAX_MS * 1000000LL) {
            fprintf(stderr, "%s: FAIL: took %.3f s, want < %.1f s (serial would be %.1f s)\n",
                    name, (double)wall / 1e9, REAL_PARALLEL_MAX_MS / 1e3,
                    n * REAL_REQUEST_MS / 1e3);
            bad = 1;
        }
        if (real_ticks * 10 < want_ticks) {
            fprintf(stderr, "%s: FAIL: ticker ticked %ld times, want >= 10%% of %ld\n",
                    name, real_ticks, want_ticks);
            bad = 1;
        }
        if (real_max_gap > REAL_GAP_MAX_MS * 1000000LL) {
            fprintf(stderr, "%s: FAIL: ticker waited %.0f ms once, want <= %d ms\n",
                    name, (double)real_max_gap / 1e6, REAL_GAP_MAX_MS);
            bad = 1;
        }
    } else if (strcmp(mode, "serial") == 0) {
        if (wall < (int64_t)n * REAL_REQUEST_MS * 900000LL) {
            fprintf(stderr, "%s: FAIL: took %.3f s, want >= 90%% of %d x %d ms (serial)\n",
                    name, (double)wall / 1e9, n, REAL_REQUEST_MS);
            bad = 1;
        }
        if (real_max_gap < REAL_REQUEST_MS * 900000LL) {
            fprintf(stderr, "%s: FAIL: ticker's longest gap %.0f ms, want >= %d ms (starved)\n",
                    name, (double)real_max_gap / 1e6, REAL_REQUEST_MS * 9 / 10);
            bad = 1;
        }
    }
    free(slot);
    free(co);
    r = may_shutdown();
    if (r < 0) {
        fprintf(stderr, "%s: may_shutdown: %s\n", name, strerror(-r));
        bad = 1;
    }
    if (!bad)
        printf("%s: ok\n", name);
    return bad;
}

#endif
