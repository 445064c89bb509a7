/* The WebSocket echo example (examples/ws_echo.c, on libmay_http) served
 * in-process, against wslay clients (wslay's event API, the other side of
 * the library's frame-layer use): two coroutines and a plain thread do the
 * upgrade handshake with a random key (checking Sec-WebSocket-Accept),
 * send text and binary messages of many sizes, whole and fragmented, check
 * the echoes, ping, and close (the server answers with the same code).
 * Bad upgrade requests get 400; a request that is not HTTP gets 400 from
 * the server.  The server then stops with nothing left to cancel.  A
 * second handler speaks and closes first: may_ws_close waits for the
 * client's answer and may_ws_close_code gives its code, a recv that timed
 * out can be tried again, and a handler that returns without a close has
 * the library send 1000.
 * tests/ws/ has the third-party clients (python3-websockets, raw frames). */
#define WS_NO_MAIN
#include "../examples/ws_echo.c"
#include "test.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <strings.h>
#include <sys/random.h>
#include <wslay/wslay.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_ACCEPT_LEN 28 /* base64 of a 20-byte digest */
#define HEAD_MAX 4096

/* A client connection: the socket and the bytes read past the response's
 * head (handed to wslay before the socket is read again). */
typedef struct ws_conn {
    int fd;
    size_t pend_off, pend_len;
    char head[HEAD_MAX + 1];
} ws_conn_t;

/* Sec-WebSocket-Accept for key (keylen bytes) into out (29 bytes, NUL). */
static void ws_accept_key(const char *key, size_t keylen, char out[WS_ACCEPT_LEN + 1])
{
    unsigned char buf[128], md[SHA_DIGEST_LENGTH];
    size_t glen = sizeof WS_GUID - 1;
    ASSERT_LE(keylen, sizeof buf - glen);
    memcpy(buf, key, keylen);
    memcpy(buf + keylen, WS_GUID, glen);
    SHA1(buf, keylen + glen, md);
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
    out[WS_ACCEPT_LEN] = '\0';
}

/* Read a response head into c->head (its length returned; NUL-terminated
 * after what was read); what follows the head is left pending. */
static size_t read_head(ws_conn_t *c)
{
    size_t got = 0;
    for (;;) {
        ASSERT_LT(got, HEAD_MAX);
        ssize_t n = may_tcp_read(c->fd, c->head + got, HEAD_MAX - got, may_deadline_in(TEST_MS(5000)));
        ASSERT_GT(n, 0);
        got += (size_t)n;
        c->head[got] = '\0';
        char *e = strstr(c->head, "\r\n\r\n");
        if (e) {
            size_t hlen = (size_t)(e + 4 - c->head);
            c->pend_off = hlen;
            c->pend_len = got - hlen;
            return hlen;
        }
    }
}

/* The value of header name in a head (up to its CR), or NULL. */
static const char *head_value(const char *head, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
            const char *v = h + nlen + 1;
            while (*v == ' ')
                v++;
            *vlen = (size_t)(strstr(v, "\r\n") - v);
            return v;
        }
    }
    return NULL;
}

/* ---- wslay callbacks ---------------------------------------------------- */

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
 * is done, or both directions are shut); < 0: -ETIMEDOUT, -EPROTO. */
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
    if ((ready & MAY_READ) && wslay_event_recv(ctx) != 0)
        return -EPROTO;
    if (wslay_event_want_write(ctx) && wslay_event_send(ctx) != 0)
        return -EPROTO;
    return 0;
}

static int port;

static void fill_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        ASSERT_GT(r, 0);
        p += r;
        n -= (size_t)r;
    }
}

typedef struct client {
    ws_conn_t conn;
    wslay_event_context_ptr ctx;
    struct {
        uint8_t *msg;
        size_t len;
        int opcode;
    } q[4]; /* echoed messages not yet checked, oldest first */
    int nq;
    bool pong;
} client_t;

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user_data)
{
    (void)ctx;
    (void)user_data;
    fill_random(buf, len);
    return 0;
}

static void client_msg_cb(wslay_event_context_ptr ctx,
                          const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
    (void)ctx;
    client_t *cl = (client_t *)((char *)user_data - offsetof(client_t, conn));
    if (arg->opcode == WSLAY_PONG) {
        ASSERT_EQ(arg->msg_length, 5);
        ASSERT(memcmp(arg->msg, "hello", 5) == 0);
        cl->pong = true;
    } else if (!wslay_is_ctrl_frame(arg->opcode)) {
        ASSERT_LT(cl->nq, 4);
        uint8_t *m = malloc(arg->msg_length + 1);
        ASSERT(m != NULL);
        if (arg->msg_length > 0)
            memcpy(m, arg->msg, arg->msg_length);
        cl->q[cl->nq].msg = m;
        cl->q[cl->nq].len = arg->msg_length;
        cl->q[cl->nq].opcode = arg->opcode;
        cl->nq++;
    }
}

static void pump_until(client_t *cl, const bool *flag)
{
    while (!*flag)
        ASSERT_EQ(ws_pump(cl->ctx, &cl->conn, may_deadline_in(TEST_MS(3000))), 0);
}

/* Wait for the next echo and check it. */
static void expect_echo(client_t *cl, uint8_t opcode, const uint8_t *msg, size_t len)
{
    while (cl->nq == 0)
        ASSERT_EQ(ws_pump(cl->ctx, &cl->conn, may_deadline_in(TEST_MS(3000))), 0);
    ASSERT_EQ(cl->q[0].opcode, opcode);
    ASSERT_EQ(cl->q[0].len, len);
    ASSERT(len == 0 || memcmp(cl->q[0].msg, msg, len) == 0);
    free(cl->q[0].msg);
    cl->nq--;
    memmove(&cl->q[0], &cl->q[1], (size_t)cl->nq * sizeof cl->q[0]);
}

/* Fragmented messages: frames of at most 777 bytes from this source. */
typedef struct frag_src {
    const uint8_t *p;
    size_t len, off;
} frag_src_t;

static ssize_t frag_read_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                            const union wslay_event_msg_source *source, int *eof,
                            void *user_data)
{
    (void)ctx;
    (void)user_data;
    frag_src_t *s = source->data;
    size_t n = s->len - s->off;
    if (n > len)
        n = len;
    if (n > 777)
        n = 777;
    memcpy(buf, s->p + s->off, n);
    s->off += n;
    *eof = s->off == s->len;
    return (ssize_t)n;
}

static int connect_server(void)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    int fd = may_tcp_connect(addr, may_deadline_in(TEST_MS(3000)));
    ASSERT_GE(fd, 0);
    ASSERT_EQ(may_tcp_set_nodelay(fd, true), 0); /* wslay sends header and payload apart */
    return fd;
}

static void client_open(client_t *cl, const char *path)
{
    memset(cl, 0, sizeof *cl);
    cl->conn.fd = connect_server();
    unsigned char raw[16];
    char key[25];
    fill_random(raw, sizeof raw);
    ASSERT_EQ(EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw), 24);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Origin: http://127.0.0.1\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, port, key);
    ASSERT_EQ(may_tcp_write_all(cl->conn.fd, req, (size_t)n, MAY_FOREVER), n);
    read_head(&cl->conn);
    ASSERT(strncmp(cl->conn.head, "HTTP/1.1 101 ", 13) == 0);
    if (strcmp(path, "/chat") == 0) /* the echo server speaks only when spoken to */
        ASSERT_EQ(cl->conn.pend_len, 0);
    size_t vlen;
    const char *v = head_value(cl->conn.head, "Upgrade", &vlen);
    ASSERT(v && vlen == 9 && strncasecmp(v, "websocket", 9) == 0);
    v = head_value(cl->conn.head, "Connection", &vlen);
    ASSERT(v && vlen == 7 && strncasecmp(v, "upgrade", 7) == 0);
    v = head_value(cl->conn.head, "Sec-WebSocket-Accept", &vlen);
    ASSERT(v != NULL);
    char want[WS_ACCEPT_LEN + 1];
    ws_accept_key(key, 24, want);
    ASSERT_EQ(vlen, WS_ACCEPT_LEN);
    ASSERT(memcmp(v, want, WS_ACCEPT_LEN) == 0);
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = ws_recv_cb,
        .send_callback = ws_send_cb,
        .genmask_callback = genmask_cb,
        .on_msg_recv_callback = client_msg_cb,
    };
    ASSERT_EQ(wslay_event_context_client_init(&cl->ctx, &cbs, &cl->conn), 0);
}

static void round_trip(client_t *cl, uint8_t opcode, const uint8_t *msg, size_t len, bool frag)
{
    frag_src_t src = {msg, len, 0};
    if (frag) {
        struct wslay_event_fragmented_msg fm = {
            .opcode = opcode, .source = {.data = &src}, .read_callback = frag_read_cb};
        ASSERT_EQ(wslay_event_queue_fragmented_msg(cl->ctx, &fm), 0);
    } else {
        struct wslay_event_msg m = {opcode, msg, len};
        ASSERT_EQ(wslay_event_queue_msg(cl->ctx, &m), 0);
    }
    expect_echo(cl, opcode, msg, len);
}

static void client_run(void)
{
    static const size_t sizes[] = {0, 1, 2, 125, 126, 127, 1000, 4096, 65535, 65536, 65537, 200000};
    enum { NSIZES = sizeof sizes / sizeof sizes[0] };
    size_t big = sizes[NSIZES - 1];
    uint8_t *text = malloc(big), *bin = malloc(big);
    ASSERT(text && bin);
    for (size_t i = 0; i < big; i++)
        text[i] = (uint8_t)(' ' + i % 95); /* printable ASCII: valid UTF-8 */
    fill_random(bin, big);

    client_t *cl = malloc(sizeof *cl); /* ~8 KiB: not on a coroutine stack */
    ASSERT(cl != NULL);
    client_open(cl, "/chat");
    for (int i = 0; i < NSIZES; i++) {
        round_trip(cl, WSLAY_TEXT_FRAME, text, sizes[i], false);
        round_trip(cl, WSLAY_BINARY_FRAME, bin, sizes[i], false);
        if (sizes[i] > 0) {
            round_trip(cl, WSLAY_TEXT_FRAME, text + 1, sizes[i] - 1, true);
            round_trip(cl, WSLAY_BINARY_FRAME, bin + 1, sizes[i] - 1, true);
        }
    }
    /* ping -> pong (answered by wslay in the server) */
    struct wslay_event_msg ping = {WSLAY_PING, (const uint8_t *)"hello", 5};
    ASSERT_EQ(wslay_event_queue_msg(cl->ctx, &ping), 0);
    pump_until(cl, &cl->pong);
    /* several messages in flight at once come back in order */
    for (int i = 0; i < 3; i++) {
        struct wslay_event_msg m = {WSLAY_BINARY_FRAME, bin + i, 70000};
        ASSERT_EQ(wslay_event_queue_msg(cl->ctx, &m), 0);
    }
    for (int i = 0; i < 3; i++)
        expect_echo(cl, WSLAY_BINARY_FRAME, bin + i, 70000);
    /* close handshake: our close, the server's answer (our code), then EOF */
    ASSERT_EQ(wslay_event_queue_close(cl->ctx, 4001, (const uint8_t *)"bye", 3), 0);
    int r;
    while ((r = ws_pump(cl->ctx, &cl->conn, may_deadline_in(TEST_MS(3000)))) == 0) {
    }
    ASSERT_EQ(r, 1);
    ASSERT(wslay_event_get_close_sent(cl->ctx));
    ASSERT(wslay_event_get_close_received(cl->ctx));
    ASSERT_EQ(wslay_event_get_status_code_received(cl->ctx), 4001); /* echoed */
    char c;
    ASSERT_EQ(may_tcp_read(cl->conn.fd, &c, 1, may_deadline_in(TEST_MS(3000))), 0);
    wslay_event_context_free(cl->ctx);
    ASSERT_EQ(may_tcp_close(cl->conn.fd), 0);
    ASSERT_EQ(cl->nq, 0);
    free(cl);
    free(text);
    free(bin);
}

/* Requests without a key, of the wrong version, with another method, or not
 * HTTP at all are refused with 400 (the wrong version saying which one). */
static void bad_requests(void)
{
    static const char *const reqs[][2] = {
        {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n",
         "HTTP/1.1 400 "},
        {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
         "HTTP/1.1 400 "},
        {"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
         "Content-Length: 0\r\n\r\n",
         "HTTP/1.1 400 "},
        {"NOT HTTP AT ALL\r\n\r\n", "HTTP/1.1 400 "},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        ws_conn_t *c = calloc(1, sizeof *c);
        ASSERT(c != NULL);
        c->fd = connect_server();
        size_t n = strlen(reqs[i][0]);
        ASSERT_EQ(may_tcp_write_all(c->fd, reqs[i][0], n, MAY_FOREVER), n);
        read_head(c);
        ASSERT(strncmp(c->head, reqs[i][1], strlen(reqs[i][1])) == 0);
        size_t vlen;
        if (i == 1)
            ASSERT(head_value(c->head, "Sec-WebSocket-Version", &vlen) && vlen == 2);
        ASSERT_EQ(may_tcp_close(c->fd), 0);
        free(c);
    }
}

/* A handler that speaks first and closes first (the echo handler never
 * does): /bye sends "hi", times out in a recv of 50 ms, echoes the next
 * message, then closes with 4002 and reports what may_ws_close and
 * may_ws_close_code said; /quiet sends "x" and returns (the library closes
 * with 1000). */
static struct {
    atomic_int timeout, close, code, after, done;
} sc;

static void scripted_handler(may_http_req_t *req, may_http_res_t *res, void *arg)
{
    (void)arg;
    may_ws_t *ws;
    ASSERT_EQ(may_ws_upgrade(req, res, &ws), 0);
    if (strcmp(may_http_path(req, NULL), "/quiet") == 0) {
        ASSERT_EQ(may_ws_send(ws, MAY_WS_BINARY, "x", 1, MAY_FOREVER), 0);
        return;
    }
    ASSERT_EQ(may_ws_send(ws, MAY_WS_TEXT, "hi", 2, MAY_FOREVER), 0);
    may_ws_msg_t m;
    sc.timeout = may_ws_recv(ws, &m, may_deadline_in(TEST_MS(50)));
    ASSERT_EQ(may_ws_recv(ws, &m, may_deadline_in(TEST_MS(5000))), 0);
    ASSERT_EQ(may_ws_send(ws, m.opcode, m.data, m.len, MAY_FOREVER), 0);
    ASSERT_EQ(may_ws_close(ws, 999, NULL, MAY_FOREVER), -EINVAL);
    sc.close = may_ws_close(ws, 4002, "server bye", may_deadline_in(TEST_MS(5000)));
    sc.code = may_ws_close_code(ws);
    sc.after = may_ws_send(ws, MAY_WS_TEXT, "late", 4, MAY_FOREVER);
    ASSERT_EQ(may_ws_recv(ws, &m, MAY_FOREVER), -EPIPE);
    sc.done = 1;
}

/* Run the client until the server's close and the TCP close; return the
 * code the server sent. */
static int client_until_close(client_t *cl)
{
    int r;
    while ((r = ws_pump(cl->ctx, &cl->conn, may_deadline_in(TEST_MS(5000)))) == 0) {
    }
    ASSERT_EQ(r, 1);
    ASSERT(wslay_event_get_close_received(cl->ctx));
    ASSERT(wslay_event_get_close_sent(cl->ctx)); /* wslay answered it */
    char c;
    ASSERT_EQ(may_tcp_read(cl->conn.fd, &c, 1, may_deadline_in(TEST_MS(5000))), 0);
    return wslay_event_get_status_code_received(cl->ctx);
}

static void server_closes(void)
{
    client_t *cl = malloc(sizeof *cl);
    ASSERT(cl != NULL);
    client_open(cl, "/bye");
    expect_echo(cl, WSLAY_TEXT_FRAME, (const uint8_t *)"hi", 2);
    may_sleep(TEST_MS(150)); /* past the server's 50 ms recv */
    round_trip(cl, WSLAY_BINARY_FRAME, (const uint8_t *)"again", 5, false);
    ASSERT_EQ(client_until_close(cl), 4002);
    wslay_event_context_free(cl->ctx);
    ASSERT_EQ(may_tcp_close(cl->conn.fd), 0);
    ASSERT_EQ(sc.timeout, -ETIMEDOUT); /* and the next recv worked */
    ASSERT_EQ(sc.close, 0);            /* wslay's answer came */
    ASSERT_EQ(sc.code, 4002);          /* with our code */
    ASSERT_EQ(sc.after, -EPIPE);
    ASSERT_EQ(sc.done, 1);

    client_open(cl, "/quiet");
    expect_echo(cl, WSLAY_BINARY_FRAME, (const uint8_t *)"x", 1);
    ASSERT_EQ(client_until_close(cl), 1000);
    wslay_event_context_free(cl->ctx);
    ASSERT_EQ(may_tcp_close(cl->conn.fd), 0);
    free(cl);
}

static void *client_co(void *arg)
{
    (void)arg;
    client_run();
    return NULL;
}

static void *client_thread(void *arg)
{
    (void)arg;
    client_run();
    return NULL;
}

int main(void)
{
    /* RFC 6455 section 1.3's example */
    char acc[WS_ACCEPT_LEN + 1];
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, acc);
    ASSERT(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);

    int lfd = may_tcp_listen("127.0.0.1:0", 128, 0);
    ASSERT_GE(lfd, 0);
    port = may_tcp_local_port(lfd);
    ASSERT_GT(port, 0);
    may_http_server_t *srv;
    ASSERT_EQ(may_http_start(&srv, lfd, &(may_http_config_t){ .handler = ws_echo_handler }), 0);
    bad_requests();
    enum { NCO = 2 };
    may_co_t *cl[NCO];
    for (int i = 0; i < NCO; i++)
        ASSERT_EQ(may_spawn(&cl[i], client_co, NULL, NULL), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, client_thread, NULL), 0);
    for (int i = 0; i < NCO; i++)
        ASSERT_EQ(may_join(cl[i], NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(pthread_join(th, NULL), 0);
    /* the connections end once their clients closed: nothing to cancel */
    int64_t end = may_deadline_in(TEST_MS(3000));
    may_http_stats_t st;
    do {
        may_http_stats(srv, &st);
        if (st.conns == 0)
            break;
        may_sleep(TEST_MS(1));
    } while (may_now() < end);
    ASSERT_EQ(st.conns, 0);
    ASSERT_EQ(st.accepted, 4 + NCO + 1);
    ASSERT_EQ(may_http_stop(srv, may_deadline_in(TEST_MS(3000))), 0);

    /* the server speaks and closes first */
    ASSERT_EQ(may_http_start(&srv, lfd, &(may_http_config_t){ .handler = scripted_handler }), 0);
    server_closes();
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
