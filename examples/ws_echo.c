/* ws_echo.c - a WebSocket (RFC 6455) echo server: one coroutine per
 * connection, frames by wslay (Debian libwslay-dev).
 *
 *   ws_echo [port [seconds]]   port 8080 by default, 127.0.0.1 only;
 *                              seconds > 0: stop after that long
 *
 * Each connection coroutine reads the HTTP upgrade request with llhttp (the
 * parser of examples/http.c; it keeps the headers that matter: Upgrade,
 * Connection, Sec-WebSocket-Key, Sec-WebSocket-Version), answers 101 with
 * Sec-WebSocket-Accept =
 * base64(SHA-1(key + GUID)) computed with OpenSSL's libcrypto (wslay does
 * no handshake), then drives a wslay_event context.  wslay's recv/send
 * callbacks call may_tcp_read / may_tcp_write with MAY_NOWAIT and report
 * WSLAY_ERR_WOULDBLOCK; the loop (ws_pump) parks in may_fd_wait for what
 * wslay wants (read, write or both), with an idle deadline.  Text and
 * binary messages are echoed whole (fragmented ones reassembled); wslay
 * answers pings and the close handshake itself.  A connection idle for
 * WS_IDLE_S seconds is closed.
 *
 * wslay, libcrypto and llhttp are linked by this example and tests/test_ws.c
 * only, never by libmay.  The test includes this file with WS_NO_MAIN and reuses
 * the handshake helpers and ws_pump for its clients. */
#include "may.h"
#include "usage.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#define WS_IDLE_S 60
#define WS_HANDSHAKE_MS 10000
#define WS_HEAD_MAX 8192           /* the upgrade request or response */
#define WS_MSG_MAX (16u << 20)     /* largest message accepted */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_ACCEPT_LEN 28           /* base64 of a 20-byte digest */

/* The handshake headers kept from a head (request or response).  A value
 * longer than WS_VALUE_MAX is kept as too long (len = SIZE_MAX). */
#define WS_VALUE_MAX 127
enum { WS_H_UPGRADE, WS_H_CONNECTION, WS_H_KEY, WS_H_VERSION, WS_H_ACCEPT, WS_H_COUNT, WS_H_OTHER };
static const char *const ws_header_names[WS_H_COUNT] = {
    "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Accept",
};
typedef struct ws_value {
    size_t len; /* 0: absent (or empty) */
    char v[WS_VALUE_MAX + 1];
} ws_value_t;

/* One side of a connection: the socket, the head's parse, and bytes that
 * arrived after the head (handed to wslay before reading the socket again). */
typedef struct ws_conn {
    int fd;
    size_t pend_off, pend_len; /* unread bytes in head[] */
    llhttp_t parser;
    bool head_done;
    int cur;                   /* WS_H_* of the header being parsed */
    char field[32];            /* its name so far */
    size_t field_len;
    bool in_value;
    ws_value_t hdr[WS_H_COUNT];
    char head[WS_HEAD_MAX + 1];
} ws_conn_t;

/* Sec-WebSocket-Accept for key (keylen bytes) into out (29 bytes, NUL). */
static void ws_accept_key(const char *key, size_t keylen, char out[WS_ACCEPT_LEN + 1])
{
    unsigned char buf[128], md[SHA_DIGEST_LENGTH];
    size_t glen = sizeof WS_GUID - 1;
    if (keylen > sizeof buf - glen)
        keylen = sizeof buf - glen;
    memcpy(buf, key, keylen);
    memcpy(buf + keylen, WS_GUID, glen);
    SHA1(buf, keylen + glen, md);
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
    out[WS_ACCEPT_LEN] = '\0';
}

/* llhttp callbacks: keep the values of the headers in ws_header_names */
static int ws_on_field(llhttp_t *p, const char *at, size_t n)
{
    ws_conn_t *c = p->data;
    if (c->in_value) { /* a new header begins */
        c->in_value = false;
        c->field_len = 0;
    }
    for (size_t i = 0; i < n; i++) /* longer names match nothing we keep */
        c->field[c->field_len < sizeof c->field ? c->field_len++ : 0] = at[i];
    return 0;
}

static int ws_on_value(llhttp_t *p, const char *at, size_t n)
{
    ws_conn_t *c = p->data;
    if (!c->in_value) { /* the name is complete: which one is it */
        c->in_value = true;
        c->cur = WS_H_OTHER;
        for (int h = 0; h < WS_H_COUNT; h++)
            if (strlen(ws_header_names[h]) == c->field_len &&
                strncasecmp(ws_header_names[h], c->field, c->field_len) == 0)
                c->cur = h;
    }
    if (c->cur == WS_H_OTHER)
        return 0;
    ws_value_t *v = &c->hdr[c->cur];
    if (v->len == SIZE_MAX || v->len + n > WS_VALUE_MAX) {
        v->len = SIZE_MAX; /* too long: refused */
        return 0;
    }
    memcpy(v->v + v->len, at, n);
    v->len += n;
    return 0;
}

static int ws_on_message_complete(llhttp_t *p)
{
    ws_conn_t *c = p->data;
    c->head_done = true;
    return HPE_PAUSED; /* nothing after the head is HTTP */
}

static const llhttp_settings_t ws_http_settings = {
    .on_header_field = ws_on_field,
    .on_header_value = ws_on_value,
    .on_message_complete = ws_on_message_complete,
};

/* Read and parse an HTTP head into c->head (type HTTP_REQUEST on the
 * server, HTTP_RESPONSE on a client): its length; what came after it is
 * left pending, and c->parser has the method or status, c->hdr the
 * handshake headers.  -EPROTO when it is not HTTP, -EMSGSIZE when it does
 * not fit, -ECONNRESET at EOF, or may_tcp_read's. */
static ssize_t ws_read_head(ws_conn_t *c, llhttp_type_t type, int64_t deadline)
{
    llhttp_init(&c->parser, type, &ws_http_settings);
    c->parser.data = c;
    c->head_done = c->in_value = false;
    c->field_len = 0;
    memset(c->hdr, 0, sizeof c->hdr);
    size_t got = 0;
    for (;;) {
        ssize_t n = may_tcp_read(c->fd, c->head + got, WS_HEAD_MAX - got, deadline);
        if (n < 0)
            return n;
        if (n == 0)
            return -ECONNRESET;
        llhttp_errno_t e = llhttp_execute(&c->parser, c->head + got, (size_t)n);
        got += (size_t)n;
        if (c->head_done && (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE)) {
            /* paused right after the head (and its empty body) */
            size_t hlen = (size_t)(llhttp_get_error_pos(&c->parser) - c->head);
            c->head[got] = '\0';
            c->pend_off = hlen;
            c->pend_len = got - hlen;
            return (ssize_t)hlen;
        }
        if (e != HPE_OK)
            return -EPROTO;
        if (got == WS_HEAD_MAX)
            return -EMSGSIZE;
    }
}

/* The value of a handshake header (WS_H_*) and *vlen, or NULL when it is
 * absent or too long. */
static const char *ws_header(const ws_conn_t *c, int h, size_t *vlen)
{
    const ws_value_t *v = &c->hdr[h];
    if (v->len == 0 || v->len == SIZE_MAX)
        return NULL;
    *vlen = v->len;
    return v->v;
}

/* Whether the comma-separated list v contains tok (case-insensitive). */
static bool ws_has_token(const char *v, size_t vlen, const char *tok)
{
    size_t tlen = strlen(tok);
    const char *end = v + vlen;
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *e = v;
        while (e < end && *e != ',')
            e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - v) == tlen && strncasecmp(v, tok, tlen) == 0)
            return true;
        v = e;
    }
    return false;
}

/* ---- wslay callbacks (shared by the server and the test's clients) ---- */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *user_data)
{
    (void)flags;
    ws_conn_t *c = user_data;
    if (c->pend_len > 0) {
        size_t n = len < c->pend_len ? len : c->pend_len;
        memcpy(buf, c->head + c->pend_off, n);
        c->pend_off += n;
        c->pend_len -= n;
        return (ssize_t)n;
    }
    ssize_t n = may_tcp_read(c->fd, buf, len, MAY_NOWAIT);
    if (n > 0)
        return n;
    if (n == -ETIMEDOUT || n == -EAGAIN)
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    else /* EOF or an error */
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                          int flags, void *user_data)
{
    (void)flags;
    ws_conn_t *c = user_data;
    ssize_t n = may_tcp_write(c->fd, data, len, MAY_NOWAIT);
    if (n > 0)
        return n;
    if (n == -ETIMEDOUT || n == -EAGAIN)
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    else
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

/* One round of the event loop: wait (until deadline) for what wslay wants,
 * then let it receive and send.  0: go on; 1: finished (the close handshake
 * is done, or both directions are shut); < 0: -ETIMEDOUT, -ECANCELED,
 * -EPROTO (a wslay error: protocol violation, EOF, reset). */
static int ws_pump(wslay_event_context_ptr ctx, ws_conn_t *c, int64_t deadline)
{
    int want = (wslay_event_want_read(ctx) ? MAY_READ : 0) |
               (wslay_event_want_write(ctx) ? MAY_WRITE : 0);
    if (want == 0)
        return 1;
    int ready = (want & MAY_READ) && c->pend_len > 0 ? MAY_READ
                                                     : may_fd_wait(c->fd, want, deadline);
    if (ready < 0)
        return ready;
    if ((ready & MAY_READ) && wslay_event_recv(ctx) != 0) {
        wslay_event_send(ctx); /* best effort: a close frame wslay queued */
        return -EPROTO;
    }
    if (wslay_event_want_write(ctx) && wslay_event_send(ctx) != 0)
        return -EPROTO;
    return 0;
}

/* ---- the server -------------------------------------------------------- */

static void ws_echo_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                        void *user_data)
{
    (void)user_data;
    if (wslay_is_ctrl_frame(arg->opcode))
        return; /* wslay answers ping and close itself */
    struct wslay_event_msg m = {arg->opcode, arg->msg, arg->msg_length};
    wslay_event_queue_msg(ctx, &m); /* copies; fails only after close */
}

/* Check the upgrade request that ws_read_head returned (hlen: its result)
 * and write the answer: 0 after a 101, else -1 (an error status was sent,
 * or nothing could be read or written). */
static int ws_handshake(ws_conn_t *c, ssize_t hlen)
{
    const char *v, *key = NULL;
    size_t vlen, klen = 0;
    const char *err = "400 Bad Request";
    if (hlen < 0 && hlen != -EPROTO) {
        return -1; /* EOF, timeout, too long: no answer */
    } else if (hlen < 0) {
        /* not HTTP: 400 */
    } else if (c->parser.method != HTTP_GET) {
        err = "405 Method Not Allowed";
    } else if ((v = ws_header(c, WS_H_VERSION, &vlen)) == NULL || vlen != 2 ||
               memcmp(v, "13", 2) != 0) {
        err = "426 Upgrade Required\r\nSec-WebSocket-Version: 13";
    } else if ((v = ws_header(c, WS_H_UPGRADE, &vlen)) != NULL &&
               ws_has_token(v, vlen, "websocket") &&
               (v = ws_header(c, WS_H_CONNECTION, &vlen)) != NULL &&
               ws_has_token(v, vlen, "upgrade") &&
               (key = ws_header(c, WS_H_KEY, &klen)) != NULL && klen == 24) {
        err = NULL;
    }
    char out[256];
    int n;
    if (err) {
        n = snprintf(out, sizeof out,
                     "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", err);
    } else {
        char accept[WS_ACCEPT_LEN + 1];
        ws_accept_key(key, klen, accept);
        n = snprintf(out, sizeof out,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    }
    ssize_t w = may_tcp_write_all(c->fd, out, (size_t)n, may_deadline_in(WS_HANDSHAKE_MS * 1000000LL));
    return err || w != n ? -1 : 0;
}

static void *ws_conn_main(void *arg)
{
    ws_conn_t *c = malloc(sizeof *c);
    if (!c) {
        may_tcp_close((int)(intptr_t)arg);
        return NULL;
    }
    c->fd = (int)(intptr_t)arg;
    c->pend_off = c->pend_len = 0;
    ssize_t hlen = ws_read_head(c, HTTP_REQUEST, may_deadline_in(WS_HANDSHAKE_MS * 1000000LL));
    wslay_event_context_ptr ctx = NULL;
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = ws_recv_cb,
        .send_callback = ws_send_cb,
        .on_msg_recv_callback = ws_echo_msg,
    };
    if (ws_handshake(c, hlen) == 0 &&
        wslay_event_context_server_init(&ctx, &cbs, c) == 0) {
        wslay_event_config_set_max_recv_msg_length(ctx, WS_MSG_MAX);
        int r;
        while ((r = ws_pump(ctx, c, may_deadline_in((int64_t)WS_IDLE_S * 1000000000))) == 0) {
        }
        if (r == -ETIMEDOUT) { /* idle: say goodbye, best effort */
            wslay_event_queue_close(ctx, WSLAY_CODE_GOING_AWAY, (const uint8_t *)"idle", 4);
            wslay_event_send(ctx);
        }
        wslay_event_context_free(ctx);
    }
    may_tcp_close(c->fd);
    free(c);
    return NULL;
}

/* The accept loop: runs until cancelled.  arg: the listening fd. */
static void *ws_serve(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = may_tcp_accept(lfd, NULL, MAY_FOREVER);
        if (fd == -ECANCELED)
            break;
        if (fd < 0)
            continue;
        may_tcp_set_nodelay(fd, true);
        if (may_go(ws_conn_main, (void *)(intptr_t)fd) < 0)
            may_tcp_close(fd);
    }
    return NULL;
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
        fprintf(stderr, "ws_echo: listen %s: error %d\n", addr, -lfd);
        return 1;
    }
    printf("ws_echo: listening on ws://127.0.0.1:%d/\n", may_tcp_local_port(lfd));
    fflush(stdout);
    may_co_t *srv;
    if (may_spawn(&srv, ws_serve, (void *)(intptr_t)lfd, NULL) < 0)
        return 1;
    if (seconds > 0) {
        may_sleep((int64_t)seconds * 1000000000);
        may_cancel(srv);
    }
    may_join(srv, NULL, MAY_FOREVER);
    may_tcp_close(lfd);
    printf("ws_echo: done\n");
    return 0;
}
#endif
