/* real_counter.c - drives examples/redis_counter.c (included, in-process)
 * against a real redis-server (tests/servers/with_server.sh redis).
 *
 * On ONE worker: the server, 20 client coroutines that each visit their
 * own page and a shared one 5 times, and the ticker of real.h.  Before the
 * clients start, the main thread (a plain thread: its hiredis calls are
 * plain libc ones) sends CLIENT PAUSE 1000, so Redis holds every INCR
 * for 1 s.  Checked: every answer is right (own page 1..5 in order, the
 * shared page's 100 answers are 1..100 each once, a bad name gets ERR),
 * the pause was felt (>= 950 ms), and the ticker on the same worker kept
 * ticking through it (no gap over REAL_GAP_MAX_MS, 500 ms): the server's
 * hiredis calls park their coroutines (libmay_hook) instead of blocking
 * the worker.  Linked without the hook this fails: the first INCR blocks
 * the worker for the whole pause. */
#define COUNTER_NO_MAIN
#include "../../examples/redis_counter.c"

#include <stdarg.h>
#include <unistd.h>

#include "real.h"

#define CLIENTS 20
#define VISITS 5
#define PAUSE_MS 1000

static int srv_port;
static char prefix[32];
static int shared_seen[CLIENTS * VISITS + 1];
static int failures;

static void __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "real_counter: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failures++; /* one worker, or the main thread after the joins: no race */
}

/* Send one line, read one answer line into ans. */
static int ask(int fd, const char *line, char *ans, size_t n)
{
    char buf[128];
    ans[0] = 0;
    int len = snprintf(buf, sizeof buf, "%s\n", line);
    if (may_tcp_write_all(fd, buf, (size_t)len, may_deadline_in(10000000000LL)) < 0)
        return -1;
    size_t have = 0;
    while (have < n - 1) {
        ssize_t r = may_tcp_read(fd, ans + have, n - 1 - have, may_deadline_in(10000000000LL));
        if (r <= 0)
            return -1;
        have += (size_t)r;
        ans[have] = 0;
        if (memchr(ans, '\n', have))
            return 0;
    }
    return -1;
}

static void *client(void *arg)
{
    int i = (int)(intptr_t)arg;
    char addr[32], own[48], shared[48], ans[128], want[96];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", srv_port);
    snprintf(own, sizeof own, "%sc%d", prefix, i);
    snprintf(shared, sizeof shared, "%shome", prefix);
    int fd = may_tcp_connect(addr, may_deadline_in(10000000000LL));
    if (fd < 0) {
        fail("client %s: connect: %s", addr, strerror(-fd));
        return NULL;
    }
    for (int k = 1; k <= VISITS; k++) {
        snprintf(want, sizeof want, "%s %d\n", own, k);
        if (ask(fd, own, ans, sizeof ans) < 0 || strcmp(ans, want) != 0)
            fail("own page: got '%s' (visit %d)", ans, k);
        long v = 0;
        if (ask(fd, shared, ans, sizeof ans) < 0 ||
            strncmp(ans, shared, strlen(shared)) != 0 ||
            (v = strtol(ans + strlen(shared), NULL, 10)) < 1 || v > CLIENTS * VISITS)
            fail("shared page: got '%s' (%ld)", ans, v);
        else
            shared_seen[v]++;
    }
    if (i == 0 && (ask(fd, "no spaces allowed", ans, sizeof ans) < 0 ||
                   strcmp(ans, "ERR bad page name\n") != 0))
        fail("bad name: got '%s'", ans);
    may_tcp_close(fd);
    return NULL;
}

int main(void)
{
    const char *host = real_env("MAY_TEST_REDIS_HOST", NULL);
    const char *port = real_env("MAY_TEST_REDIS_PORT", NULL);
    if (!host || !port) {
        printf("real_counter: skipped: no MAY_TEST_REDIS_HOST/PORT "
               "(run under tests/servers/with_server.sh redis)\n");
        return REAL_SKIP;
    }
    snprintf(counter_redis_host, sizeof counter_redis_host, "%s", host);
    counter_redis_port = atoi(port);
    snprintf(prefix, sizeof prefix, "t%d-", (int)getpid());
    /* without hand-off (docs/CAVEATS.md rule 1), as in real.h: the hook alone */
    if (may_configure(&(may_config_t){ .workers = 1, .no_handoff = true }) < 0)
        return 1;

    int lfd = may_tcp_listen("127.0.0.1:0", 128, 0);
    if (lfd < 0) {
        fprintf(stderr, "real_counter: listen: %s\n", strerror(-lfd));
        return 1;
    }
    srv_port = may_tcp_local_port(lfd);
    may_co_t *srv, *ticker, *co[CLIENTS];
    if (may_spawn(&srv, counter_serve, (void *)(intptr_t)lfd, &(may_spawn_opts_t){ .name = "accept" }) < 0 ||
        may_spawn(&ticker, real_ticker, NULL, &(may_spawn_opts_t){ .name = "ticker" }) < 0)
        return 1;

    /* the main thread is no coroutine: a plain hiredis connection */
    redisContext *rc = redisConnect(host, counter_redis_port);
    redisReply *r = rc && !rc->err ? redisCommand(rc, "CLIENT PAUSE %d", PAUSE_MS) : NULL;
    if (!r || r->type != REDIS_REPLY_STATUS) {
        fprintf(stderr, "real_counter: CLIENT PAUSE failed: %s\n", rc ? rc->errstr : "no memory");
        return 1;
    }
    freeReplyObject(r);
    int64_t t0 = may_now();
    for (int i = 0; i < CLIENTS; i++)
        if (may_spawn(&co[i], client, (void *)(intptr_t)i, &(may_spawn_opts_t){ .name = "client" }) < 0)
            return 1;
    for (int i = 0; i < CLIENTS; i++)
        may_join(co[i], NULL, MAY_FOREVER);
    int64_t wall = may_now() - t0;
    atomic_store_explicit(&real_stop, true, memory_order_relaxed);
    may_cancel(ticker);
    may_join(ticker, NULL, MAY_FOREVER);
    may_cancel(srv);
    may_join(srv, NULL, MAY_FOREVER);
    may_tcp_close(lfd);

    for (int v = 1; v <= CLIENTS * VISITS; v++)
        if (shared_seen[v] != 1)
            fail("shared page: answer %d seen %d times", v, shared_seen[v]);
    /* the counters in Redis agree; then remove them */
    r = redisCommand(rc, "GET visits:%shome", prefix);
    if (!r || r->type != REDIS_REPLY_STRING || atoi(r->str) != CLIENTS * VISITS)
        fail("GET home: %s", r && r->type == REDIS_REPLY_STRING ? r->str : "?");
    freeReplyObject(r);
    for (int i = 0; i < CLIENTS; i++)
        freeReplyObject(redisCommand(rc, "DEL visits:%sc%d", prefix, i));
    freeReplyObject(redisCommand(rc, "DEL visits:%shome", prefix));
    redisFree(rc);

    printf("real_counter: %d clients x %d visits x 2 on 1 worker with Redis paused %d ms: "
           "%.3f s; ticker %ld ticks, max gap %.0f ms; %d failures\n",
           CLIENTS, VISITS, PAUSE_MS, (double)wall / 1e9, real_ticks,
           (double)real_max_gap / 1e6, failures);
    if (wall < (PAUSE_MS - 50) * 1000000LL)
        fail("took %ld ms: the pause was not felt", (long)(wall / 1000000));
    if (real_max_gap > REAL_GAP_MAX_MS * 1000000LL)
        fail("ticker waited %ld ms once: the worker was blocked", (long)(real_max_gap / 1000000));
    /* the server's connection coroutines end once they read their EOF */
    may_stats_t st;
    for (int k = 0; k < 500 && may_stats(&st) == 0 && st.alive > 0; k++)
        may_sleep(10000000);
    int rr = may_shutdown();
    if (rr < 0)
        fail("may_shutdown: %s", strerror(-rr));
    if (failures)
        return 1;
    printf("real_counter: ok\n");
    return 0;
}
