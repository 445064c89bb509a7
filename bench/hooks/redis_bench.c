/* redis_bench.c - Debian's unmodified hiredis, synchronous API, in
 * coroutines on the default workers, linked with libmay_hook: the client
 * side of bench/hooks.sh (docs/BENCHMARKS.md, "Blocking libraries through
 * libmay_hook").  Never part of the tests.
 *
 *   bench_hooks_redis HOST PORT [conns [requests]]
 *
 * conns coroutines (default 64) each open a connection (redisConnect) and
 * send SET key:<c> xxx and GET key:<c> in turn (redisCommand, one request
 * in flight per connection, as redis-benchmark -c conns -P 1 does), until
 * requests (default 200000) have been made in all; every reply is checked.
 * Prints "requests N seconds S rps R" (from the first connect to the last
 * reply).  Its peer is bench/go/redigo. */
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "may.h"

static const char *host;
static int port;
static long per_conn;
static atomic_long errors;

static void *conn(void *arg)
{
    int c = (int)(intptr_t)arg;
    redisContext *rc = redisConnect(host, port);
    if (!rc || rc->err) {
        fprintf(stderr, "redis_bench: connect: %s\n", rc ? rc->errstr : "out of memory");
        atomic_fetch_add(&errors, per_conn);
        redisFree(rc);
        return NULL;
    }
    char key[32];
    snprintf(key, sizeof key, "key:%d", c);
    for (long i = 0; i < per_conn; i += 2) {
        redisReply *r = redisCommand(rc, "SET %s xxx", key);
        if (!r || r->type != REDIS_REPLY_STATUS)
            atomic_fetch_add(&errors, 1);
        freeReplyObject(r);
        r = redisCommand(rc, "GET %s", key);
        if (!r || r->type != REDIS_REPLY_STRING || strcmp(r->str, "xxx") != 0)
            atomic_fetch_add(&errors, 1);
        freeReplyObject(r);
        if (rc->err)
            break;
    }
    redisFree(rc);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_hooks_redis HOST PORT [conns [requests]]\n");
        return 2;
    }
    host = argv[1];
    port = atoi(argv[2]);
    int conns = argc > 3 ? atoi(argv[3]) : 64;
    long requests = argc > 4 ? atol(argv[4]) : 200000;
    if (conns < 1 || requests < 2)
        return 2;
    per_conn = (requests / conns + 1) & ~1L; /* SET + GET pairs */
    may_co_t **co = calloc((size_t)conns, sizeof *co);
    if (!co)
        return 1;
    int64_t t0 = may_now();
    for (int c = 0; c < conns; c++)
        if (may_spawn(&co[c], conn, (void *)(intptr_t)c, &(may_spawn_opts_t){ .name = "conn" }) < 0)
            return 1;
    for (int c = 0; c < conns; c++)
        may_join(co[c], NULL, MAY_FOREVER);
    double s = (double)(may_now() - t0) / 1e9;
    long n = per_conn * conns;
    printf("requests %ld seconds %.3f rps %.0f errors %ld\n", n, s, (double)n / s,
           atomic_load(&errors));
    free(co);
    return atomic_load(&errors) ? 1 : may_shutdown() < 0;
}
