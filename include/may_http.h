/* may_http.h - libmay_http: a small HTTP/1.1 and WebSocket server on libmay.
 *
 * What it is (docs/HTTP.md has the whole story):
 * - An optional library beside libmay (pkg-config may_http, CMake target
 *   may::http).  libmay itself still depends on libc and pthreads only;
 *   this one adds llhttp (compiled in), wslay and libcrypto (for the
 *   WebSocket handshake's SHA-1).
 * - One coroutine per connection.  The user gives ONE handler,
 *   handler(req, res, arg); routing is the user's.  The handler runs in the
 *   connection's coroutine and may block (a database query, a sleep, a
 *   channel receive): the other connections go on.
 * - Keep-alive, pipelining (every response of one read goes out in one
 *   write), a Date header formatted once a second, request bodies
 *   (Content-Length and chunked, buffered up to body_max before the handler
 *   runs), streaming responses (chunked), Expect: 100-continue, limits and
 *   timeouts with their status codes (below), and WebSocket on wslay.
 *
 * Errors follow libmay's convention: a negative errno value, never errno.
 * Deadlines are absolute monotonic nanoseconds (may_now()), MAY_FOREVER or
 * MAY_NOWAIT.  A cancelled connection coroutine gets -ECANCELED from every
 * call below that would wait.
 *
 * Statuses the library itself answers (then closes the connection):
 *   400  malformed request; HTTP/1.1 without Host, two Host headers,
 *        whitespace before a header's colon; CONNECT; a WebSocket handshake
 *        that is not HTTP/1.1 GET with Host, Upgrade, Connection: Upgrade
 *        and a key that decodes to 16 bytes (may_ws_upgrade); a handshake
 *        right but for its Sec-WebSocket-Version gets 400 with
 *        "Sec-WebSocket-Version: 13" and the connection stays open
 *        (RFC 6455 4.4)
 *   408  the request head did not arrive within header_timeout_ms, or the
 *        body fell below body_min_rate (only if some of the request came)
 *   413  body over body_max (at once if Content-Length says so)
 *   414  request target over head_max
 *   417  an Expect other than 100-continue
 *   431  request head over head_max
 *   505  an HTTP version other than 1.0 and 1.1
 * The connection limit (max_conns) and EMFILE pause accepting: the kernel's
 * backlog holds new clients until a connection closes (as Go's
 * netutil.LimitListener does); no client is accepted only to be refused.
 */
#ifndef MAY_HTTP_H
#define MAY_HTTP_H

#include "may.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct may_http_server may_http_server_t; /* opaque */
typedef struct may_http_req may_http_req_t;       /* opaque, valid during the handler */
typedef struct may_http_res may_http_res_t;       /* opaque, valid during the handler */

/* The handler: answer req through res.  If it returns without answering,
 * the library sends the status set (200 by default) with an empty body, as
 * Go's net/http does (or ends a started streaming response).  It may block; a connection's requests are handled one at a
 * time, in order. */
typedef void (*may_http_handler_t)(may_http_req_t *req, may_http_res_t *res, void *arg);

/* A transport under HTTP (TLS, for example: examples/https.c).  NULL in
 * the config means plain TCP.  conn is the transport's per-connection
 * state, made by open. */
typedef struct may_http_transport {
    /* After accept: set *conn (may stay NULL); 0, or < 0 to drop the fd. */
    int (*open)(void *arg, int fd, void **conn, int64_t deadline);
    /* Read up to n bytes: > 0, 0 at EOF, or -errno (-ETIMEDOUT at deadline). */
    ssize_t (*read)(void *conn, int fd, void *buf, size_t n, int64_t deadline);
    /* Write all n bytes: 0 or -errno. */
    int (*write_all)(void *conn, int fd, const void *buf, size_t n, int64_t deadline);
    /* Before a graceful close (TLS: close_notify); may be NULL. */
    void (*shutdown)(void *conn, int fd);
    /* After the fd was closed: free conn; may be NULL. */
    void (*close)(void *conn);
    /* true: the transport buffers (TLS records), so the server reads instead
     * of waiting for the fd to become readable first. */
    bool buffered;
} may_http_transport_t;

/* Server configuration.  Zero fields take the default in brackets. */
typedef struct may_http_config {
    may_http_handler_t handler;   /* required */
    void *arg;                    /* handler's third argument */
    const char *server_name;      /* Server header value ["may"]; "" for none */
    int64_t header_timeout_ms;    /* a request head must arrive within [10 000];
                                     for a new connection counted from accept,
                                     for a kept-alive one from its first byte */
    int64_t idle_timeout_ms;      /* keep-alive wait for the next request [60 000] */
    int64_t write_timeout_ms;     /* each response write (the peer must read) [30 000] */
    int64_t body_grace_ms;        /* body reading: this long before ... [10 000] */
    size_t body_min_rate;         /* ... the body must average this many bytes/s [1024] */
    size_t head_max;              /* request line + headers, bytes [65 536] */
    size_t body_max;              /* request body, bytes [8 MiB] */
    unsigned max_conns;           /* open connections [10 000] */
    int64_t linger_ms;            /* drain input this long when closing [1 000] */
    const may_http_transport_t *transport; /* NULL: plain TCP */
    void *transport_arg;          /* open's first argument */
    size_t ws_max_message;        /* WebSocket message, bytes [16 MiB]: else close 1009 */
    size_t ws_max_queue;          /* WebSocket outgoing bytes queued before sends
                                     wait and reading stops [1 MiB] */
    size_t stack_size;            /* connection coroutines' stacks [the runtime's] */
} may_http_config_t;

/* Start serving: an accept loop on listening socket lfd (which stays the
 * caller's; -1: no accept loop, connections come through
 * may_http_serve_conn).  cfg is copied.  0 or -errno (-EINVAL: no handler,
 * bad lfd). */
MAY_API int may_http_start_sized(may_http_server_t **srv, int lfd,
                                 const may_http_config_t *cfg, size_t size);
#define may_http_start(srv, lfd, ...) \
    may_http_start_sized((srv), (lfd), (__VA_ARGS__), sizeof(may_http_config_t))

/* Serve one connected socket (which becomes the server's: it closes it).
 * 0, or -errno (-EAGAIN: at max_conns; the fd is then closed too). */
MAY_API int may_http_serve_conn(may_http_server_t *srv, int fd);

/* Graceful stop: stop accepting, close idle connections, let requests in
 * progress finish and close after their response; at the deadline cancel
 * the connections left.  Frees srv.  0, or -ETIMEDOUT if some had to be
 * cancelled (they are gone when it returns either way). */
MAY_API int may_http_stop(may_http_server_t *srv, int64_t deadline);

typedef struct may_http_stats {
    uint64_t conns;       /* open now */
    uint64_t accepted;    /* connections served, in all */
    uint64_t requests;    /* requests handled (handler called or library-answered) */
    uint64_t reads;       /* reads that returned data */
    uint64_t writes;      /* writes (each a batch of responses) */
    uint64_t active;      /* connections holding buffers now (not idle) */
} may_http_stats_t;
MAY_API void may_http_stats(may_http_server_t *srv, may_http_stats_t *out);

/* ---- The request (pointers valid until the handler returns) ------------- */

/* Method name ("GET", "POST", ...), NUL-terminated. */
MAY_API const char *may_http_method(const may_http_req_t *req);
/* The request target as sent, its path (absolute-form targets give the
 * path part: "http://h/a?b" -> "/a"), and its query (after '?', "" if
 * none).  All NUL-terminated; *len (if not NULL) gets the length. */
MAY_API const char *may_http_target(const may_http_req_t *req, size_t *len);
MAY_API const char *may_http_path(const may_http_req_t *req, size_t *len);
MAY_API const char *may_http_query(const may_http_req_t *req, size_t *len);
/* 10 for HTTP/1.0, 11 for HTTP/1.1. */
MAY_API int may_http_version(const may_http_req_t *req);
/* The first header called name (case-insensitive), NUL-terminated, or NULL. */
MAY_API const char *may_http_header(const may_http_req_t *req, const char *name, size_t *len);
/* Header i (0 .. may_http_nheaders()-1): 0, or -ERANGE. */
MAY_API size_t may_http_nheaders(const may_http_req_t *req);
MAY_API int may_http_header_at(const may_http_req_t *req, size_t i, const char **name,
                               const char **value);
/* The whole body (NUL-terminated after *len bytes; "" if none). */
MAY_API const void *may_http_body(const may_http_req_t *req, size_t *len);
/* Whether the connection is to close after this response. */
MAY_API bool may_http_closing(const may_http_req_t *req);

/* ---- The response ------------------------------------------------------- */

/* Set the status (100..999, default 200) and add headers, before the body.
 * The library writes Server, Date, Content-Length or Transfer-Encoding and
 * Connection itself: adding those is -EINVAL, as is a name that is not a
 * token or a value with a control character other than HTAB (CR and LF
 * included: no response splitting).  -EALREADY after the head went out. */
MAY_API int may_http_status(may_http_res_t *res, int status);
MAY_API int may_http_add_header(may_http_res_t *res, const char *name, const char *value);

/* The whole response in one call: status, Content-Type (NULL: none) and
 * body; ends the response.  0 or -errno (-EPIPE: the connection failed;
 * -EALREADY: already answered). */
MAY_API int may_http_respond(may_http_res_t *res, int status, const char *content_type,
                             const void *body, size_t len);
/* The body, ending the response (status and headers as set before). */
MAY_API int may_http_send(may_http_res_t *res, const void *body, size_t len);

/* Streaming: the first write sends the head (Transfer-Encoding: chunked on
 * HTTP/1.1; on HTTP/1.0 the body runs to the close), each write one chunk,
 * waiting while the peer does not read (write_timeout_ms, then -ETIMEDOUT).
 * may_http_end sends the last chunk.  0 or -errno. */
MAY_API int may_http_write(may_http_res_t *res, const void *data, size_t len);
MAY_API int may_http_end(may_http_res_t *res);

/* ---- WebSocket (RFC 6455, on wslay) -------------------------------------- */

typedef struct may_ws may_ws_t; /* valid until the handler returns */

enum {
    MAY_WS_TEXT = 1,
    MAY_WS_BINARY = 2,
};

/* Whether req asks for a WebSocket upgrade (Upgrade: websocket). */
MAY_API bool may_ws_is_upgrade(const may_http_req_t *req);

/* Answer a WebSocket handshake with 101 and make *ws.  A bad handshake is
 * answered 400 here and gives -EPROTO; the handler then just returns.
 * Once upgraded, the connection ends when the handler returns (with a
 * close frame 1000 if none was sent). */
MAY_API int may_ws_upgrade(may_http_req_t *req, may_http_res_t *res, may_ws_t **ws);

/* A received message: opcode MAY_WS_TEXT or MAY_WS_BINARY, data valid
 * until the next may_ws_recv or may_ws_close. */
typedef struct may_ws_msg {
    int opcode;
    const void *data;
    size_t len;
} may_ws_msg_t;

/* Wait for the next whole message (pings are answered, fragments joined).
 * 0, or -errno: -EPIPE when the peer closed (may_ws_close_code tells with
 * what), -EMSGSIZE after a message over ws_max_message (close 1009 sent),
 * -EPROTO after a protocol error (close 1002 sent) or a text message that
 * is not UTF-8 (close 1007 sent), -ETIMEDOUT, -ECANCELED, -ECONNRESET. */
MAY_API int may_ws_recv(may_ws_t *ws, may_ws_msg_t *msg, int64_t deadline);

/* Queue a message; it goes out before the next read (may_ws_recv,
 * may_ws_close, the handler's return), at once when no received input is
 * waiting, and this waits while more than ws_max_queue bytes are queued
 * (back-pressure: nothing is read while anything is owed).  0 or -errno
 * (-EPIPE after a close). */
MAY_API int may_ws_send(may_ws_t *ws, int opcode, const void *data, size_t len, int64_t deadline);

/* Send a close frame (code 1000..4999, reason <= 123 bytes, may be NULL)
 * and wait for the peer's (until deadline).  0 or -errno (-EPROTO after a
 * protocol error, at once: the input is not read any more). */
MAY_API int may_ws_close(may_ws_t *ws, int code, const char *reason, int64_t deadline);

/* The close code the peer sent (0 if none yet, 1005 if it sent none). */
MAY_API int may_ws_close_code(const may_ws_t *ws);

#ifdef __cplusplus
}
#endif
#endif /* MAY_HTTP_H */
