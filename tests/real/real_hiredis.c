/* real_hiredis.c - Debian's unmodified hiredis, synchronous API, from 100
 * coroutines on one worker (tests/real/real.h has the harness).
 *
 * Each coroutine opens its own connection (redisConnect, or
 * redisConnectUnix), sends BLPOP real-<pid>-<i> 0.1 (an empty list: the
 * server answers nil after 100 ms, per client; DEBUG SLEEP would stop the
 * whole server) and then ECHO <i>, and checks both answers.
 *
 * The server: MAY_TEST_REDIS_HOST and MAY_TEST_REDIS_PORT (TCP), else
 * MAY_TEST_REDIS_SOCK (a Unix socket), as tests/servers/with_server.sh
 * redis exports them; none set: skip (77). */
#include <hiredis/hiredis.h>
#include <unistd.h>

#include "real.h"

static const char *sock, *host;
static int port;

static int request(int i, char *err, size_t errlen)
{
    redisContext *c = host ? redisConnect(host, port) : redisConnectUnix(sock);
    if (!c || c->err) {
        snprintf(err, errlen, "connect: %s", c ? c->errstr : "out of memory");
        redisFree(c);
        return -1;
    }
    int rc = -1;
    int64_t t0 = may_now();
    redisReply *r = redisCommand(c, "BLPOP real-%d-%d 0.1", (int)getpid(), i);
    int64_t ms = (may_now() - t0) / 1000000;
    if (!r) {
        snprintf(err, errlen, "BLPOP: %s", c->errstr);
        goto out_free;
    }
    if (r->type != REDIS_REPLY_NIL) {
        snprintf(err, errlen, "BLPOP: reply type %d, want nil", r->type);
        goto out_reply;
    }
    if (ms < REAL_REQUEST_MS * 9 / 10) {
        snprintf(err, errlen, "BLPOP answered after %lld ms, want ~%d", (long long)ms,
                 REAL_REQUEST_MS);
        goto out_reply;
    }
    freeReplyObject(r);
    r = redisCommand(c, "ECHO co-%d", i);
    char want[32];
    snprintf(want, sizeof want, "co-%d", i);
    if (!r || r->type != REDIS_REPLY_STRING || strcmp(r->str, want) != 0) {
        snprintf(err, errlen, "ECHO: %s", !r ? c->errstr : r->type == REDIS_REPLY_STRING ? r->str : "not a string");
        goto out_reply;
    }
    rc = 0;
out_reply:
    freeReplyObject(r);
out_free:
    redisFree(c);
    return rc;
}

int main(int argc, char **argv)
{
    sock = real_env("MAY_TEST_REDIS_SOCK", NULL);
    host = real_env("MAY_TEST_REDIS_HOST", NULL);
    const char *p = real_env("MAY_TEST_REDIS_PORT", NULL);
    if (!p)
        host = NULL;
    if (!sock && !host) {
        printf("real_hiredis: skipped: no MAY_TEST_REDIS_HOST/PORT or MAY_TEST_REDIS_SOCK "
               "(run under tests/servers/with_server.sh redis)\n");
        return REAL_SKIP;
    }
    port = p ? atoi(p) : 0;
    return real_main(argc, argv, "real_hiredis", request);
}
