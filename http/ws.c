/* ws.c - libmay_http's WebSocket side (RFC 6455): the upgrade handshake and
 * the message layer, on wslay's frame layer.
 *
 * The model.  A handler that gets an upgrade request calls may_ws_upgrade,
 * which checks the handshake, answers 101 and takes the connection over
 * from server.c (may__http_hijack); the handler then runs the whole
 * session in the connection's coroutine with may_ws_recv / may_ws_send /
 * may_ws_close, and returns.  Nothing runs behind its back: a may_ws_t is
 * driven only by the calls of the one coroutine that owns it (no locks,
 * not to be shared between coroutines).
 *
 * Why wslay's frame layer and not its event layer.  wslay_event_recv
 * parses everything a read brought, answers pings and a close itself, and
 * its send queue puts control frames ahead of queued data: a message and a
 * close frame that arrive in one read would have the close answered (and
 * further sends refused) before the handler could echo the message, and a
 * peer that sends without reading grows that queue without bound.  It also
 * takes a 1-byte close payload for "no status".  So wslay here parses and
 * builds frames (wslay_frame_recv / wslay_frame_send: headers, masking,
 * the checks on control frames and on lengths), and this file does the
 * rest: one frame at a time, stopping after each whole message, so that a
 * close behind a message is seen only when the handler asks for the next
 * one.  Fragments are joined, text is checked to be UTF-8 as it arrives
 * (our own check: wslay's is in its event layer), pings are answered,
 * close codes checked.
 *
 * Input.  Bytes come first from what followed the upgrade request in
 * server.c's last read (rest), then from reads of up to IBUF bytes into
 * ibuf, which wslay's recv callback copies from (wslay asks for at most
 * its own 4 KiB buffer at a time).  A message that arrives as one frame in
 * one piece is handed to the handler in place (wslay's buffer, unmasked
 * there), others are copied into msg, which takes a frame's size at its
 * header (at most ws_max_message in all) and is kept while messages keep
 * coming; over MSG_KEEP, it is freed when a read would wait.  A read that
 * finds data does not wait, so parsing yields every YIELD_BYTES of input:
 * a peer sending fast does not hold the worker.
 *
 * Output and back-pressure.  Frames go into obuf; a payload over DIRECT
 * bytes is written from the caller's buffer instead (after what obuf
 * held).  obuf is written out (write_all through server.c's transport,
 * each write within write_timeout_ms) when a send finds no received input
 * waiting to be parsed, when it holds over ws_max_queue bytes, and always
 * before the connection is read again.  So the answers to several
 * messages that came in one read go out in one write, the way server.c
 * answers pipelined requests, and nothing is read while anything is owed:
 * a peer that sends without reading finds its messages no longer read
 * once the socket's buffers are full, and the server holds at most one
 * message and ws_max_queue bytes for it (the old example queued every
 * echo: 111 -> 401 MiB in 1.6 s).  A write that fails or times out (the
 * earlier of the call's deadline and write_timeout_ms) may have sent part
 * of a frame, so it ends all output (werr, sticky).  The cost of the
 * batching: a send made while input waits goes out at the handler's next
 * may_ws_recv (or may_ws_close, or its return), not at once.
 *
 * Errors.  A protocol error is answered with a close frame 1002 (1007 for
 * text that is not UTF-8; both give -EPROTO) or 1009 for a message over
 * ws_max_message (-EMSGSIZE), and may_ws_recv gives that error from then
 * on; the peer's close is answered with its own code and reason (-EPIPE).  The connection's end (ws_end, which server.c runs after the
 * handler returns, through may__http_at_end) sends close 1000 (1001 when
 * cancelled) if no close was sent, waits up to linger_ms for the peer's
 * close where the input can still be parsed, and frees everything.
 * server.c then closes as after a last response: shutdown(SHUT_WR) and
 * drain for linger_ms, so that a peer still sending (a too-big message)
 * reads our close frame instead of a reset.
 *
 * Coordination with server.c: may__http_hijack gives the bytes after the
 * upgrade request, may__http_at_end has server.c run ws_end after the
 * handler, and a hijacked connection closes through linger_close.
 */
#include "http_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define IBUF 16384          /* one read */
#define DIRECT 32768        /* payloads this big are written in place */
#define OBUF_KEEP 65536     /* obuf over this is freed after a write */
#define MSG_KEEP 65536      /* msg over this is freed when the input idles */
#define YIELD_BYTES (256 * 1024) /* parsing this much input yields once */
#define NS_MS 1000000LL

/* Incremental UTF-8 check (RFC 3629: no overlongs, surrogates or code
 * points past U+10FFFF): need continuation bytes are still expected, the
 * next one in [lo, hi]. */
typedef struct utf8 {
    uint8_t need, lo, hi;
} utf8_t;

struct may_ws {
    may__http_conn_t *c;
    wslay_frame_context_ptr fr;
    size_t max_message, max_queue;
    int64_t write_ns, linger_ns;

    /* Input: rest first, then ibuf[ioff, ilen). */
    const uint8_t *rest;
    size_t nrest;
    size_t ioff, ilen;
    uint64_t given;     /* bytes handed to wslay's buffer ... */
    uint64_t parsed;    /* ... and of those, the ones parsed (headers too) */
    int64_t rdl;        /* deadline of reads now */
    int ierr;           /* why the recv callback gave nothing: -errno */
    size_t unyielded;   /* bytes read since the last yield */
    bool eof;           /* the peer closed or reset its side */

    /* The frame being received. */
    bool in_frame;
    uint8_t fop;        /* its opcode */
    bool ffin;
    uint64_t frem;      /* payload bytes still to come */

    /* The data message being received (mop 0: none). */
    int mop;
    uint8_t *msg;
    size_t mlen, mcap;
    utf8_t u;

    /* The control frame being received. */
    uint8_t ctl[125];
    size_t clen;

    /* Output. */
    uint8_t *obuf;
    size_t olen, ocap;
    int64_t wdl;        /* deadline of writes now */
    int werr;           /* a write failed: no more output (sticky) */

    /* Closing. */
    int done;           /* may_ws_recv's answer from now on, 0: none yet */
    bool synced;        /* the input is still frame by frame (no 1002) */
    bool close_sent, close_recvd;
    int peer_code;      /* may_ws_close_code */

    uint8_t ibuf[IBUF];
};

static int64_t earlier(int64_t a, int64_t b)
{
    if (a == MAY_FOREVER)
        return b;
    if (b == MAY_FOREVER)
        return a;
    return a < b ? a : b;
}

/* ---- UTF-8 --------------------------------------------------------------- */

static bool utf8_feed(utf8_t *u, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (u->need == 0) {
            while (i + 8 <= n) { /* ASCII, eight bytes at a time */
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            if (i == n)
                break;
            uint8_t b = p[i++];
            if (b < 0x80)
                continue;
            if (b < 0xC2) { /* a continuation byte, or an overlong 2-byte lead */
                return false;
            } else if (b < 0xE0) {
                *u = (utf8_t){ 1, 0x80, 0xBF };
            } else if (b < 0xF0) { /* E0: no overlongs; ED: no surrogates */
                *u = (utf8_t){ 2, b == 0xE0 ? 0xA0 : 0x80, b == 0xED ? 0x9F : 0xBF };
            } else if (b < 0xF5) { /* F0: no overlongs; F4: up to U+10FFFF */
                *u = (utf8_t){ 3, b == 0xF0 ? 0x90 : 0x80, b == 0xF4 ? 0x8F : 0xBF };
            } else {
                return false;
            }
        } else {
            uint8_t b = p[i++];
            if (b < u->lo || b > u->hi)
                return false;
            *u = (utf8_t){ (uint8_t)(u->need - 1), 0x80, 0xBF };
        }
    }
    return true;
}

/* ---- Output -------------------------------------------------------------- */

/* Write out obuf. */
static int flush(may_ws_t *ws)
{
    if (ws->werr)
        return ws->werr;
    if (ws->olen == 0)
        return 0;
    int r = may__http_write_all(ws->c, ws->obuf, ws->olen, ws->wdl);
    ws->olen = 0;
    if (ws->ocap > OBUF_KEEP) {
        free(ws->obuf);
        ws->obuf = NULL;
        ws->ocap = 0;
    }
    if (r < 0)
        ws->werr = r;
    return r;
}

/* wslay's send callback: a frame's header, then its payload.  Small pieces
 * are appended to obuf, a big payload is written in place after it. */
static ssize_t send_cb(const uint8_t *data, size_t len, int flags, void *user)
{
    (void)flags;
    may_ws_t *ws = user;
    if (ws->werr)
        return -1;
    if (len >= DIRECT) {
        if (flush(ws) < 0)
            return -1;
        int r = may__http_write_all(ws->c, data, len, ws->wdl);
        if (r < 0) {
            ws->werr = r;
            return -1;
        }
        return (ssize_t)len;
    }
    if (ws->ocap - ws->olen < len) {
        size_t cap = ws->ocap ? ws->ocap : 4096;
        while (cap - ws->olen < len)
            cap *= 2;
        uint8_t *p = realloc(ws->obuf, cap);
        if (!p) {
            ws->werr = -ENOMEM;
            return -1;
        }
        ws->obuf = p;
        ws->ocap = cap;
    }
    memcpy(ws->obuf + ws->olen, data, len);
    ws->olen += len;
    return (ssize_t)len;
}

/* Frame one message (server frames are not masked) into obuf. */
static int put_frame(may_ws_t *ws, uint8_t opcode, const void *data, size_t len)
{
    struct wslay_frame_iocb io = {
        .fin = 1, .opcode = opcode, .payload_length = len, .data = data, .data_length = len,
    };
    ssize_t r = wslay_frame_send(ws->fr, &io);
    if (ws->werr)
        return ws->werr;
    return r == (ssize_t)len ? 0 : -EINVAL;
}

/* Whether received bytes wait to be parsed (then the handler will soon ask
 * for the next message, and a send can wait for the batch). */
static bool input_waits(const may_ws_t *ws)
{
    return ws->nrest > 0 || ws->ioff < ws->ilen || ws->given > ws->parsed;
}

/* After queueing: write now, or leave it for the batch (see the essay). */
static int push(may_ws_t *ws)
{
    if (ws->olen > ws->max_queue || !input_waits(ws))
        return flush(ws);
    return 0;
}

/* Queue a close frame with code (0: none) and reason, and write it out
 * with everything before it. */
static int send_close(may_ws_t *ws, int code, const void *reason, size_t rlen)
{
    uint8_t p[125];
    size_t n = 0;
    if (code) {
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        if (rlen)
            memcpy(p + 2, reason, rlen);
        n = 2 + rlen;
    }
    ws->close_sent = true;
    int r = put_frame(ws, WSLAY_CONNECTION_CLOSE, p, n);
    return r < 0 ? r : flush(ws);
}

/* ---- Input --------------------------------------------------------------- */

/* wslay's recv callback: what is buffered, else (with the output written
 * first) one read. */
static ssize_t recv_cb(uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    may_ws_t *ws = user;
    const uint8_t *src;
    size_t n;
    if (ws->nrest > 0) {
        src = ws->rest;
        n = len < ws->nrest ? len : ws->nrest;
        ws->rest += n;
        ws->nrest -= n;
    } else {
        if (ws->ioff == ws->ilen) {
            if (ws->eof) {
                ws->ierr = -ECONNRESET;
                return -1;
            }
            if (ws->olen > 0) { /* nothing is read while anything is owed */
                ws->wdl = may_deadline_in(ws->write_ns);
                int r = flush(ws);
                if (r < 0) {
                    ws->ierr = r;
                    return -1;
                }
            }
            ssize_t r = -ETIMEDOUT;
            if (ws->mcap > MSG_KEEP && !ws->mop) {
                /* a big message's buffer is kept while messages keep
                 * coming, and freed before the connection idles */
                r = may__http_read(ws->c, ws->ibuf, IBUF, MAY_NOWAIT);
                if (r == -ETIMEDOUT) {
                    free(ws->msg);
                    ws->msg = NULL;
                    ws->mcap = 0;
                }
            }
            if (r == -ETIMEDOUT)
                r = may__http_read(ws->c, ws->ibuf, IBUF, ws->rdl);
            if (r <= 0) {
                /* a timeout or a cancel can be tried again; not the rest */
                if (r == 0 || (r != -ETIMEDOUT && r != -ECANCELED))
                    ws->eof = true;
                ws->ierr = r == 0 ? -ECONNRESET : (int)r;
                return -1;
            }
            ws->ioff = 0;
            ws->ilen = (size_t)r;
            /* a read that finds data does not wait: a peer sending fast
             * must not hold the worker (the monitor's 10 ms) */
            ws->unyielded += (size_t)r;
            if (ws->unyielded >= YIELD_BYTES) {
                ws->unyielded = 0;
                may_yield();
            }
        }
        src = ws->ibuf + ws->ioff;
        n = ws->ilen - ws->ioff;
        if (n > len)
            n = len;
        ws->ioff += n;
    }
    memcpy(buf, src, n);
    ws->given += n;
    return (ssize_t)n;
}

/* Answer a protocol error with close code and end the input with err. */
static int fail(may_ws_t *ws, int code, int err)
{
    if (code == WSLAY_CODE_PROTOCOL_ERROR)
        ws->synced = false;
    if (!ws->close_sent) {
        ws->wdl = may_deadline_in(ws->write_ns);
        send_close(ws, code, NULL, 0);
    }
    ws->done = err;
    return err;
}

static bool close_code_ok(int code)
{
    /* RFC 6455 7.4: 1004-1006 and 1015 are never sent; 1016-2999 are
     * reserved, 3000-4999 for libraries and applications. */
    return (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006) ||
           (code >= 3000 && code <= 4999);
}

/* A whole control frame (ctl[0, clen)) arrived.  0, or the error that ends
 * the input. */
static int control(may_ws_t *ws)
{
    if (ws->fop == WSLAY_PONG)
        return 0;
    if (ws->fop == WSLAY_PING) {
        if (ws->close_sent) /* no frame follows a close */
            return 0;
        ws->wdl = may_deadline_in(ws->write_ns);
        int r = put_frame(ws, WSLAY_PONG, ws->ctl, ws->clen);
        if (r == 0)
            r = push(ws);
        return r < 0 ? (ws->done = r) : 0;
    }
    int code = 1005;
    if (ws->clen == 1)
        return fail(ws, WSLAY_CODE_PROTOCOL_ERROR, -EPROTO);
    if (ws->clen >= 2) {
        code = ws->ctl[0] << 8 | ws->ctl[1];
        if (!close_code_ok(code))
            return fail(ws, WSLAY_CODE_PROTOCOL_ERROR, -EPROTO);
        utf8_t u = { 0, 0, 0 };
        if (!utf8_feed(&u, ws->ctl + 2, ws->clen - 2) || u.need)
            return fail(ws, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, -EPROTO);
    }
    ws->close_recvd = true;
    ws->peer_code = code;
    if (!ws->close_sent) { /* answer with its code and reason */
        ws->wdl = may_deadline_in(ws->write_ns);
        send_close(ws, code == 1005 ? 0 : code, ws->ctl + 2, ws->clen < 2 ? 0 : ws->clen - 2);
    }
    return ws->done = -EPIPE;
}

/* Room in msg for n more bytes: exactly that much when last (the final
 * frame's length is known), else doubling. */
static int msg_reserve(may_ws_t *ws, size_t n, bool last)
{
    if (ws->mcap - ws->mlen < n) {
        size_t cap = ws->mcap ? ws->mcap : 4096;
        while (cap - ws->mlen < n)
            cap *= 2;
        if (last)
            cap = ws->mlen + n;
        uint8_t *m = realloc(ws->msg, cap);
        if (!m)
            return -ENOMEM;
        ws->msg = m;
        ws->mcap = cap;
    }
    return 0;
}

/* The next piece of a frame from wslay: 1, or 0 when the input ends
 * (ws->ierr says why), or -EPROTO (a control frame over 125 bytes or
 * fragmented, a length not in its shortest form or with the top bit set).
 * A frame's first piece begins it: in_frame, fop, ffin, frem; every piece
 * is counted in parsed (header bytes too, for input_waits). */
static int next_piece(may_ws_t *ws, struct wslay_frame_iocb *io, bool *start)
{
    memset(io, 0, sizeof *io);
    ws->ierr = 0;
    ssize_t r = wslay_frame_recv(ws->fr, io);
    if (r == WSLAY_ERR_WANT_READ) {
        if (!ws->ierr)
            ws->ierr = -ECONNRESET;
        return 0;
    }
    if (r < 0) {
        ws->synced = false;
        return -EPROTO;
    }
    *start = !ws->in_frame;
    if (*start) {
        uint64_t len = io->payload_length;
        ws->parsed += 2 + (len > 65535 ? 8 : len > 125 ? 2 : 0) + (io->mask ? 4 : 0);
        ws->in_frame = true;
        ws->fop = io->opcode;
        ws->ffin = io->fin;
        ws->frem = len;
        if (wslay_is_ctrl_frame(io->opcode))
            ws->clen = 0;
    }
    ws->parsed += io->data_length;
    ws->frem -= io->data_length;
    if (wslay_is_ctrl_frame(ws->fop) && io->data_length &&
        ws->clen + io->data_length <= sizeof ws->ctl) {
        memcpy(ws->ctl + ws->clen, io->data, io->data_length);
        ws->clen += io->data_length;
    }
    if (ws->frem == 0)
        ws->in_frame = false;
    return 1;
}

/* The input ended (next_piece gave 0): a timeout or a cancel can be tried
 * again, anything else ends it for good. */
static int input_ended(may_ws_t *ws)
{
    if (ws->ierr == -ETIMEDOUT || ws->ierr == -ECANCELED)
        return ws->ierr;
    return ws->done = ws->ierr;
}

/* Parse frames until a whole data message is in out (0) or the input
 * ends (-errno; ws->done when for good). */
static int next_message(may_ws_t *ws, may_ws_msg_t *out)
{
    for (;;) {
        struct wslay_frame_iocb io;
        bool start;
        int r = next_piece(ws, &io, &start);
        if (r == 0)
            return input_ended(ws);
        if (r < 0)
            return fail(ws, WSLAY_CODE_PROTOCOL_ERROR, -EPROTO);
        if (start) {
            if (io.rsv || !io.mask) /* no extensions; a client masks */
                return fail(ws, WSLAY_CODE_PROTOCOL_ERROR, -EPROTO);
            switch (io.opcode) {
            case WSLAY_CONTINUATION_FRAME:
                if (!ws->mop)
                    return fail(ws, WSLAY_CODE_PROTOCOL_ERROR, -EPROTO);
                break;
            case WSLAY_TEXT_FRAME:
            case WSLAY_BINARY_FRAME:
                if (ws->mop) /* a new message inside a fragmented one */
                    return fail(ws, WSLAY_CODE_PROTOCOL_ERROR, -EPROTO);
                ws->mop = io.opcode;
                ws->mlen = 0;
                ws->u = (utf8_t){ 0, 0, 0 };
                break;
            case WSLAY_CONNECTION_CLOSE:
            case WSLAY_PING:
            case WSLAY_PONG:
                if (!io.fin || io.payload_length > 125) /* wslay checks these too */
                    return fail(ws, WSLAY_CODE_PROTOCOL_ERROR, -EPROTO);
                break;
            default:
                return fail(ws, WSLAY_CODE_PROTOCOL_ERROR, -EPROTO);
            }
            if (!wslay_is_ctrl_frame(io.opcode) && io.payload_length > ws->max_message - ws->mlen)
                return fail(ws, WSLAY_CODE_MESSAGE_TOO_BIG, -EMSGSIZE);
        }
        if (wslay_is_ctrl_frame(ws->fop)) {
            if (ws->in_frame)
                continue;
            int e = control(ws);
            if (e < 0)
                return e;
            continue;
        }
        /* a data frame's piece: the whole message in one piece is handed
         * over in place, others are joined in msg */
        bool whole = start && !ws->in_frame && ws->ffin && ws->mlen == 0;
        if (ws->mop == WSLAY_TEXT_FRAME && !utf8_feed(&ws->u, io.data, io.data_length))
            return fail(ws, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, -EPROTO);
        if (!whole) {
            /* a frame's first piece makes room for all of it */
            if (start && msg_reserve(ws, io.payload_length, ws->ffin) < 0)
                return fail(ws, WSLAY_CODE_INTERNAL_SERVER_ERROR, -ENOMEM);
            if (io.data_length)
                memcpy(ws->msg + ws->mlen, io.data, io.data_length);
            ws->mlen += io.data_length;
        }
        if (ws->in_frame || !ws->ffin)
            continue;
        if (ws->mop == WSLAY_TEXT_FRAME && ws->u.need)
            return fail(ws, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, -EPROTO);
        out->opcode = ws->mop;
        out->data = whole ? io.data : ws->msg ? ws->msg : (const uint8_t *)"";
        out->len = whole ? io.data_length : ws->mlen;
        ws->mop = 0;
        return 0;
    }
}

/* After our close: read until the peer's close (0), dropping everything
 * else, until deadline.  Only while the input is still frame by frame. */
static int await_close(may_ws_t *ws, int64_t deadline)
{
    if (ws->close_recvd)
        return 0;
    if (ws->eof)
        return ws->done ? ws->done : -ECONNRESET;
    if (!ws->synced)
        return -EPROTO;
    ws->rdl = deadline;
    for (;;) {
        struct wslay_frame_iocb io;
        bool start;
        int r = next_piece(ws, &io, &start);
        if (r == 0)
            return input_ended(ws);
        if (r < 0)
            return r;
        if (ws->fop != WSLAY_CONNECTION_CLOSE || ws->in_frame)
            continue;
        ws->close_recvd = true;
        ws->peer_code = ws->clen >= 2 ? ws->ctl[0] << 8 | ws->ctl[1] : 1005;
        ws->done = -EPIPE;
        return 0;
    }
}

/* ---- The handshake ------------------------------------------------------- */

/* Whether the comma-separated list v has token tok (case-insensitive). */
static bool has_token(const char *v, const char *tok)
{
    size_t tlen = strlen(tok);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',')
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

/* Whether any header called name lists tok. */
static bool header_has(const may_http_req_t *req, const char *name, const char *tok)
{
    size_t n = may_http_nheaders(req);
    for (size_t i = 0; i < n; i++) {
        const char *hn, *hv;
        if (may_http_header_at(req, i, &hn, &hv) == 0 && strcasecmp(hn, name) == 0 &&
            has_token(hv, tok))
            return true;
    }
    return false;
}

/* The one header called name (NULL if none, or more than one). */
static const char *header_one(const may_http_req_t *req, const char *name)
{
    const char *v = NULL;
    size_t n = may_http_nheaders(req);
    for (size_t i = 0; i < n; i++) {
        const char *hn, *hv;
        if (may_http_header_at(req, i, &hn, &hv) == 0 && strcasecmp(hn, name) == 0) {
            if (v)
                return NULL;
            v = hv;
        }
    }
    return v;
}

/* A Sec-WebSocket-Key: base64 of 16 bytes (24 characters, "==" last). */
static bool key_ok(const char *k)
{
    unsigned char raw[18];
    return strlen(k) == 24 && k[22] == '=' && k[23] == '=' &&
           EVP_DecodeBlock(raw, (const unsigned char *)k, 24) == 18;
}

MAY_API bool may_ws_is_upgrade(const may_http_req_t *req)
{
    return req && header_has(req, "Upgrade", "websocket");
}

static void ws_end(void *arg);

MAY_API int may_ws_upgrade(may_http_req_t *req, may_http_res_t *res, may_ws_t **out)
{
    if (!req || !res || !out)
        return -EINVAL;
    *out = NULL;
    const char *key = header_one(req, "Sec-WebSocket-Key");
    const char *ver = header_one(req, "Sec-WebSocket-Version");
    if (may_http_version(req) != 11 || strcmp(may_http_method(req), "GET") != 0 ||
        !may_http_header(req, "Host", NULL) || !header_has(req, "Upgrade", "websocket") ||
        !header_has(req, "Connection", "upgrade") || !key || !key_ok(key)) {
        int r = may__http_fail(res, 400);
        return r == -EALREADY ? r : -EPROTO;
    }
    if (!ver || strcmp(ver, "13") != 0) {
        /* a handshake but for another version: RFC 6455 4.4 says which one
         * we speak (and the connection may go on, to try again) */
        if (may_http_add_header(res, "Sec-WebSocket-Version", "13") < 0)
            return -EALREADY;
        may_http_respond(res, 400, "text/plain", "Bad Request\n", 12);
        return -EPROTO;
    }
    const may_http_config_t *cfg = may__http_config(req);
    may_ws_t *ws = calloc(1, sizeof *ws);
    static const struct wslay_frame_callbacks cbs = { .send_callback = send_cb,
                                                      .recv_callback = recv_cb };
    if (!ws || wslay_frame_context_init(&ws->fr, &cbs, ws) != 0) {
        free(ws);
        may__http_fail(res, 503);
        return -ENOMEM;
    }
    ws->c = res->c;
    ws->max_message = cfg->ws_max_message;
    ws->max_queue = cfg->ws_max_queue;
    ws->write_ns = cfg->write_timeout_ms * NS_MS;
    ws->linger_ns = cfg->linger_ms * NS_MS;
    ws->synced = true;

    /* Sec-WebSocket-Accept: base64(SHA-1(key GUID)) */
    char kg[24 + sizeof WS_GUID], accept[29];
    unsigned char md[SHA_DIGEST_LENGTH];
    memcpy(kg, key, 24);
    memcpy(kg + 24, WS_GUID, sizeof WS_GUID - 1);
    SHA1((const unsigned char *)kg, 24 + sizeof WS_GUID - 1, md);
    EVP_EncodeBlock((unsigned char *)accept, md, SHA_DIGEST_LENGTH);

    const char *rest;
    may__http_hijack(res, &rest, &ws->nrest);
    ws->rest = (const uint8_t *)rest;
    may__http_at_end(res, ws_end, ws);
    char head[256 + 64];
    const char *name = cfg->server_name && *cfg->server_name ? cfg->server_name : NULL;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%.64s%s\r\n",
                     accept, name ? "Server: " : "", name ? name : "", name ? "\r\n" : "");
    ws->wdl = may_deadline_in(ws->write_ns);
    int r = send_cb((const uint8_t *)head, (size_t)n, 0, ws) < 0 ? ws->werr : flush(ws);
    if (r < 0) {
        ws->close_sent = true; /* nothing more to say */
        ws->done = -EPIPE;
        return r;
    }
    *out = ws;
    return 0;
}

/* ---- The session --------------------------------------------------------- */

MAY_API int may_ws_recv(may_ws_t *ws, may_ws_msg_t *msg, int64_t deadline)
{
    if (!ws || !msg)
        return -EINVAL;
    if (ws->done)
        return ws->done;
    ws->rdl = deadline;
    return next_message(ws, msg);
}

MAY_API int may_ws_send(may_ws_t *ws, int opcode, const void *data, size_t len, int64_t deadline)
{
    if (!ws || (opcode != MAY_WS_TEXT && opcode != MAY_WS_BINARY) || (!data && len))
        return -EINVAL;
    if (ws->werr || ws->close_sent)
        return -EPIPE;
    ws->wdl = earlier(deadline, may_deadline_in(ws->write_ns));
    int r = put_frame(ws, (uint8_t)opcode, data, len);
    return r < 0 ? r : push(ws);
}

MAY_API int may_ws_close(may_ws_t *ws, int code, const char *reason, int64_t deadline)
{
    size_t rlen = reason ? strlen(reason) : 0;
    if (!ws || !close_code_ok(code) || rlen > 123)
        return -EINVAL;
    if (!ws->close_sent) {
        if (ws->werr)
            return -EPIPE;
        ws->wdl = earlier(deadline, may_deadline_in(ws->write_ns));
        int r = send_close(ws, code, reason, rlen);
        if (r < 0)
            return r;
    }
    return await_close(ws, deadline);
}

MAY_API int may_ws_close_code(const may_ws_t *ws)
{
    return ws ? ws->peer_code : 0;
}

static void ws_free(may_ws_t *ws)
{
    wslay_frame_context_free(ws->fr);
    free(ws->msg);
    free(ws->obuf);
    free(ws);
}

/* After the handler: the close it did not send, the peer's close, free. */
static void ws_end(void *arg)
{
    may_ws_t *ws = arg;
    ws->wdl = may_deadline_in(ws->write_ns);
    if (!ws->close_sent && !ws->werr && !ws->eof)
        send_close(ws, may_cancelled() ? WSLAY_CODE_GOING_AWAY : WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
    else
        flush(ws);
    if (!ws->werr && !ws->eof)
        await_close(ws, may_deadline_in(ws->linger_ns));
    ws_free(ws);
}
