/* ws_echo.c - a WebSocket (RFC 6455) echo server on libmay_http (may_http.h).
 *
 *   ws_echo [port [seconds]]   port 8080 by default, 127.0.0.1 only;
 *                              seconds > 0: stop after that long
 *
 * Every request is taken for a WebSocket handshake (anything else gets 400
 * from may_ws_upgrade); every text or binary message comes back as it
 * came.  Pings, fragments, UTF-8, the limits, back-pressure and the close
 * handshake are the library's (docs/HTTP.md, "## WebSocket").  A
 * connection idle for WS_IDLE_S seconds is closed with 1001.
 *
 * tests/test_ws.c (wslay clients) and tests/ws/ (python3-websockets and
 * raw-frame clients) include this file with WS_NO_MAIN and serve
 * ws_echo_handler in-process. */
#include "may_http.h"
#include "usage.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define WS_IDLE_S 60
#define WS_S 1000000000LL

static void ws_echo_handler(may_http_req_t *req, may_http_res_t *res, void *arg)
{
    (void)arg;
    may_ws_t *ws;
    if (may_ws_upgrade(req, res, &ws) < 0)
        return; /* answered 400 */
    may_ws_msg_t m;
    int r;
    while ((r = may_ws_recv(ws, &m, may_deadline_in(WS_IDLE_S * WS_S))) == 0) {
        if (may_ws_send(ws, m.opcode, m.data, m.len, MAY_FOREVER) < 0)
            return;
    }
    if (r == -ETIMEDOUT)
        may_ws_close(ws, 1001, "idle", may_deadline_in(WS_S));
    /* returning ends the connection (with a close frame 1000 if none was sent) */
}

#ifndef WS_NO_MAIN
static const char usage[] =
    "usage: ws_echo [port [seconds]]\n"
    "  port     port to listen on, 127.0.0.1 only (default 8080; 0: any free port)\n"
    "  seconds  stop after this many seconds (default 0: run until killed)\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 2, usage);
    char addr[48];
    snprintf(addr, sizeof addr, "127.0.0.1:%ld", argc > 1 ? usage_long(argv[1], 0, 65535, usage) : 8080);
    int seconds = argc > 2 ? (int)usage_long(argv[2], 0, 1000000000, usage) : 0;
    int lfd = may_tcp_listen(addr, 1024, 0);
    if (lfd < 0) {
        fprintf(stderr, "ws_echo: listen %s: %s\n", addr, strerror(-lfd));
        return 1;
    }
    may_http_server_t *srv;
    int r = may_http_start(&srv, lfd, &(may_http_config_t){ .handler = ws_echo_handler });
    if (r < 0) {
        fprintf(stderr, "ws_echo: start: %s\n", strerror(-r));
        return 1;
    }
    printf("ws_echo: listening on ws://127.0.0.1:%d/\n", may_tcp_local_port(lfd));
    fflush(stdout);
    do /* seconds 0: until killed */
        may_sleep((seconds > 0 ? seconds : 3600) * WS_S);
    while (seconds == 0);
    may_http_stop(srv, may_deadline_in(WS_S));
    may_tcp_close(lfd);
    printf("ws_echo: done\n");
    return 0;
}
#endif
