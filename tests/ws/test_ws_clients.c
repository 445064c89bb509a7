/* libmay_http's WebSocket side against third-party clients: the echo
 * handler of examples/ws_echo.c served in-process (so that the sanitizer
 * and valgrind stages check the server), and tests/ws/ws_clients.py run as
 * a child from this plain thread: python3-websockets for what a real
 * client does, hand-written frames for what it refuses to send.  Cases
 * (each a function in the script; docs/HTTP.md "## WebSocket"):
 * - handshake: RFC 6455's accept value; HTTP/1.0, POST, no Host, no
 *   Upgrade: websocket, no Connection: Upgrade, a version other than 13
 *   (400 with Sec-WebSocket-Version: 13), keys that do not decode to 16
 *   bytes, two keys -> 400; a 100 kB head -> 431, not a reset;
 * - echo: text (UTF-8), binary, empty and 1 MiB messages, in flight
 *   together, fragmented ones joined, pings answered, the close handshake
 *   with the client's code and reason echoed;
 * - batch: a message and a close in one write (the echo before the close),
 *   a ping and a close (the pong first), 200 messages sent with the
 *   handshake itself;
 * - too_big: a message over ws_max_message (whole, fragmented, text) gets
 *   close 1009, and the peer reads it (no reset) though it was still
 *   sending;
 * - protocol: oversized or fragmented control frames, a 1-byte close, a
 *   64-bit length with the top bit set, lengths not in shortest form,
 *   unmasked frames, RSV bits, unknown opcodes, stray continuations, bad
 *   close codes -> close 1002, read by the peer before a clean EOF;
 * - utf8: invalid text (also across fragments, and in a close reason) ->
 *   1007; a character split between fragments is fine;
 * - pressure: a client that sends 1 MiB (then 1000-byte) messages and never
 *   reads: the server's RSS grows by less than 48 MiB and the client
 *   manages to send less than 64 MiB (the old examples/ws_echo.c grew by
 *   290 MiB in 1.6 s).
 * Skips (77) when no python3 with the websockets module is found. */
#define WS_NO_MAIN
#include "../../examples/ws_echo.c"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* A python3 that has websockets (Debian's python3-websockets), or NULL. */
static const char *find_python(void)
{
    static const char *const cands[] = { "python3", "/usr/bin/python3" };
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "%s -c 'import websockets' >/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0)
            return cands[i];
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *py = find_python();
    if (!py) {
        printf("skip: no python3 with websockets (scripts/deps.sh installs python3-websockets)\n");
        return 77;
    }
    int lfd = may_tcp_listen("127.0.0.1:0", 128, 0);
    ASSERT_GE(lfd, 0);
    may_http_server_t *srv;
    ASSERT_EQ(may_http_start(&srv, lfd,
                             &(may_http_config_t){ .handler = ws_echo_handler,
                                                   .ws_max_message = 1 << 20,
                                                   .ws_max_queue = 1 << 20 }),
              0);
    /* argv[1..]: cases to run (default: all) */
    char cmd[1024];
    int n = snprintf(cmd, sizeof cmd, "%s %s/ws_clients.py %d %d", py, MAY_WS_TEST_DIR,
                     may_tcp_local_port(lfd), (int)getpid());
    for (int i = 1; i < argc && n < (int)sizeof cmd - 64; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " %s", argv[i]);
    fflush(stdout);
    int st = system(cmd);
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);

    /* every connection ended by itself: nothing left to cancel */
    may_http_stats_t s;
    int64_t end = may_deadline_in(TEST_MS(5000));
    do {
        may_http_stats(srv, &s);
        if (s.conns == 0)
            break;
        may_sleep(TEST_MS(10));
    } while (may_now() < end);
    ASSERT_EQ(s.conns, 0);
    ASSERT_EQ(may_http_stop(srv, may_deadline_in(TEST_MS(3000))), 0);
    ASSERT_EQ(may_tcp_close(lfd), 0);
    /* may_http_stop returns once every connection coroutine said it was
     * done; the last of them may still be ending */
    int64_t gone = may_deadline_in(TEST_MS(3000));
    may_stats_t ms;
    while (may_stats(&ms), ms.alive > 0 && may_now() < gone)
        may_sleep(TEST_MS(1));
    ASSERT_EQ(ms.alive, 0);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
