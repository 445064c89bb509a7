/* http_impl.h - what server.c and ws.c share inside libmay_http.
 *
 * server.c owns connections, requests and responses; ws.c takes over a
 * connection whose request asked for a WebSocket upgrade, through the four
 * calls at the bottom.  Nothing here is exported (the library is built
 * with -fvisibility=hidden; only MAY_API names in may_http.h are). */
#ifndef MAY_HTTP_IMPL_H
#define MAY_HTTP_IMPL_H

#include "may_http.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct may__http_conn may__http_conn_t;
typedef struct conn_start conn_start_t;

struct may_http_server {
    may_http_config_t cfg;       /* copied, defaults filled in */
    int lfd;                     /* listening socket, -1: none */
    may_co_t *accept;            /* the accept loop, NULL without lfd */
    pthread_mutex_t list_lock;   /* guards list and dead; held for a few
                                    stores, never across a wait (a may_mutex
                                    would fail to lock in a cancelled one) */
    may__http_conn_t *list;      /* every open connection */
    struct conn_start *dead;     /* ended connections for the reaper */
    may_sem_t *reap;             /* one token per node on dead */
    may_co_t *reaper;            /* joins ended connection coroutines */
    may_wg_t *wg;                /* connection coroutines not yet joined */
    may_sem_t *room;             /* max_conns tokens, one per open connection */
    atomic_bool stopping;        /* may_http_stop began: connections close */
    atomic_uint nconns;          /* open connections */
    size_t server_name_len;
    char head200[320];           /* "HTTP/1.1 200 OK\r\nServer: ...\r\nDate: " */
    size_t head200_len;
    _Atomic uint64_t accepted;
    uint64_t requests, reads, writes; /* of ended connections (list_lock) */
};

/* The request and the response are views of the connection. */
struct may_http_req {
    may__http_conn_t *c;
};
struct may_http_res {
    may__http_conn_t *c;
};

/* The connection's transport: read and write through the configured
 * transport (or TCP), with libmay's deadlines.  read: > 0, 0 at EOF, or
 * -errno; write_all: 0 or -errno. */
ssize_t may__http_read(may__http_conn_t *c, void *buf, size_t n, int64_t deadline);
int may__http_write_all(may__http_conn_t *c, const void *buf, size_t n, int64_t deadline);

/* For ws.c: take the connection over from HTTP.  Gives the bytes that
 * followed the upgrade request in the last read (a client may send frames
 * at once; they stay valid until the handler returns) and marks the
 * connection so that it closes when the handler returns.  The responses
 * of pipelined requests before this one have been written already. */
void may__http_hijack(may_http_res_t *res, const char **rest, size_t *nrest);

/* Run fn(arg) once when the handler returns, before the connection
 * closes (ws.c: the closing handshake and freeing its state).  A hijacked
 * connection then closes as after a last response: shutdown(SHUT_WR) and
 * a drain of linger_ms. */
void may__http_at_end(may_http_res_t *res, void (*fn)(void *), void *arg);

/* The server's configuration (ws_max_message, ws_max_queue, write_timeout_ms). */
const may_http_config_t *may__http_config(const may_http_req_t *req);

/* Answer a status with a short text body and close after it (400 for a
 * bad handshake).  0 or -errno. */
int may__http_fail(may_http_res_t *res, int status);

#endif
