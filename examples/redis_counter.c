/* redis_counter.c - a visit counter: unmodified hiredis in coroutines.
 *
 *   redis_counter [port [redis [seconds]]]
 *       port     127.0.0.1 port to serve on (default 8081; 0: any free one)
 *       redis    the Redis server, host:port (default 127.0.0.1:6379)
 *       seconds  > 0: stop after that long (default 0: run until killed)
 *
 * The protocol is one line per request: a page name (1 to 64 characters
 * of [A-Za-z0-9_./-]); the answer is "<page> <visits>\n", visits being the
 * page's counter after this visit (Redis INCR visits:<page>), or
 * "ERR <why>\n".  Try it with `nc 127.0.0.1 8081` and type page names.
 *
 * The point: the Redis client is Debian's hiredis, with its plain blocking
 * API (redisConnect, redisCommand), unchanged.  This program links
 * libmay_hook (docs/HOOKS.md), which interposes the read, write, poll,
 * connect ... that hiredis calls: in a coroutine they park only that
 * coroutine, so each client connection's coroutine keeps its own Redis
 * connection and simply calls redisCommand, and a slow Redis reply holds up
 * that client alone.  Without the hook the same calls would block the
 * worker thread under them and every coroutine queued on it.
 *
 * tests/real/real_counter.c includes this file (COUNTER_NO_MAIN) and drives
 * it against a private redis-server (tests/servers/with_server.sh). */
#include "may.h"
#include "usage.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNTER_LINE_MAX 64     /* longest page name */
#define COUNTER_IDLE_S 60       /* close a client idle this long */

static char counter_redis_host[256] = "127.0.0.1";
static int counter_redis_port = 6379;

/* One client: read lines, answer each.  arg: the connection's fd. */
static void *counter_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    /* a blocking connect and blocking I/O from here on: the hook parks us */
    redisContext *rc = redisConnect(counter_redis_host, counter_redis_port);
    char in[4 * COUNTER_LINE_MAX], out[COUNTER_LINE_MAX + 64];
    size_t have = 0;
    for (;;) {
        char *nl = memchr(in, '\n', have);
        if (!nl) {
            if (have == sizeof in)
                break; /* a line too long to be a page name */
            ssize_t n = may_tcp_read(fd, in + have, sizeof in - have,
                                     may_deadline_in(COUNTER_IDLE_S * 1000000000LL));
            if (n <= 0)
                break; /* EOF, error, idle, cancelled */
            have += (size_t)n;
            continue;
        }
        size_t len = (size_t)(nl - in);
        if (len > 0 && in[len - 1] == '\r')
            len--;
        in[len] = 0;
        int olen;
        if (len == 0 || len > COUNTER_LINE_MAX || strspn(in, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                "abcdefghijklmnopqrstuvwxyz0123456789_./-") != len) {
            olen = snprintf(out, sizeof out, "ERR bad page name\n");
        } else if (!rc || rc->err) {
            olen = snprintf(out, sizeof out, "ERR redis: %s\n", rc ? rc->errstr : "out of memory");
        } else {
            redisReply *r = redisCommand(rc, "INCR visits:%s", in);
            if (r && r->type == REDIS_REPLY_INTEGER)
                olen = snprintf(out, sizeof out, "%s %lld\n", in, r->integer);
            else
                olen = snprintf(out, sizeof out, "ERR redis: %s\n",
                                !r ? rc->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "?");
            freeReplyObject(r);
        }
        if (may_tcp_write_all(fd, out, (size_t)olen, may_deadline_in(COUNTER_IDLE_S * 1000000000LL)) < 0)
            break;
        size_t used = (size_t)(nl - in) + 1;
        memmove(in, nl + 1, have - used);
        have -= used;
    }
    redisFree(rc);
    may_tcp_close(fd);
    return NULL;
}

/* The accept loop: runs until cancelled.  arg: the listening fd. */
static void *counter_serve(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = may_tcp_accept(lfd, NULL, MAY_FOREVER);
        if (fd == -ECANCELED)
            break;
        if (fd < 0)
            continue;
        may_tcp_set_nodelay(fd, true);
        if (may_go(counter_conn, (void *)(intptr_t)fd) < 0)
            may_tcp_close(fd);
    }
    return NULL;
}

#ifndef COUNTER_NO_MAIN
static const char usage[] =
    "usage: redis_counter [port [redis [seconds]]]\n"
    "  port     port to serve on, 127.0.0.1 only (default 8081; 0: any free port)\n"
    "  redis    the Redis server as host:port (default 127.0.0.1:6379)\n"
    "  seconds  stop after this many seconds (default 0: run until killed)\n"
    "Each line a client sends is a page name; the answer is \"<page> <visits>\".\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 3, usage);
    long port = argc > 1 ? usage_long(argv[1], 0, 65535, usage) : 8081;
    if (argc > 2) {
        const char *colon = strrchr(argv[2], ':');
        if (!colon || colon == argv[2] || (size_t)(colon - argv[2]) >= sizeof counter_redis_host)
            usage_fail(usage, "not host:port:", argv[2]);
        counter_redis_port = (int)usage_long(colon + 1, 1, 65535, usage);
        memcpy(counter_redis_host, argv[2], (size_t)(colon - argv[2]));
        counter_redis_host[colon - argv[2]] = 0;
    }
    int seconds = argc > 3 ? (int)usage_long(argv[3], 0, 1000000000, usage) : 0;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%ld", port);
    int lfd = may_tcp_listen(addr, 1024, 0);
    if (lfd < 0) {
        fprintf(stderr, "redis_counter: listen %s: %s\n", addr, strerror(-lfd));
        return 1;
    }
    may_co_t *srv;
    int r = may_spawn(&srv, counter_serve, (void *)(intptr_t)lfd,
                      &(may_spawn_opts_t){ .name = "counter-accept" });
    if (r < 0) {
        fprintf(stderr, "redis_counter: spawn: %s\n", strerror(-r));
        return 1;
    }
    printf("redis_counter: listening on 127.0.0.1:%d, counting in redis at %s:%d\n",
           may_tcp_local_port(lfd), counter_redis_host, counter_redis_port);
    fflush(stdout);
    if (seconds > 0)
        may_sleep((int64_t)seconds * 1000000000);
    else
        may_join(srv, NULL, MAY_FOREVER); /* until killed */
    may_cancel(srv);
    may_join(srv, NULL, MAY_FOREVER);
    may_tcp_close(lfd);
    printf("redis_counter: done\n");
    return 0;
}
#endif
