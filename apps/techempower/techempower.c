/* techempower.c - TechEmpower's six test types on libmay_http and
 * PostgreSQL (README.md says how to run it and which rules it follows).
 *
 *   techempower [PORT [CONNINFO]]
 *
 * Routes, as the specification has them:
 *   /plaintext          text/plain "Hello, World!"
 *   /json               {"message":"Hello, World!"}, a jansson object made
 *                       and serialised per request
 *   /db                 one random World row, {"id":N,"randomNumber":M}
 *   /queries?queries=N  N rows (1..500; missing, not an integer or < 1
 *                       counts as 1, > 500 as 500), each by its own query
 *   /fortunes           every Fortune row plus one made at request time,
 *                       sorted by message, HTML-escaped, UTF-8
 *   /updates?queries=N  N rows read one by one, given new random numbers,
 *                       written back in one statement
 *   anything else       404
 * Every response carries Server, Date, Content-Type and Content-Length
 * (the library writes the first, second and fourth).
 *
 * The design.  Each HTTP connection is a coroutine of libmay_http; its
 * handler blocks on the database like plain sequential code, and pg.c
 * pipelines every coroutine's queries over a few connections (the pool's
 * essay).  Nothing here blocks a thread: libpq runs non-blocking under
 * libmay's fd wait, and no interposition library is linked.
 *
 * Random numbers: a splitmix64 sequence on one atomic counter (any worker,
 * no lock, no thread-local: a coroutine may move between threads).
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../../examples/usage.h"
#include "may.h"
#include "may_http.h"
#include "pg.h"

/* Connection coroutines' stacks: the runtime's default (64 KiB; a request
 * here peaks at about 12 KiB), but ASan's redzones make libmay_http's
 * frames alone take 45 KiB of it: give sanitized builds room. */
#if defined(__SANITIZE_ADDRESS__)
#define TE_STACK_SIZE (256 * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TE_STACK_SIZE (256 * 1024)
#endif
#endif
#ifndef TE_STACK_SIZE
#define TE_STACK_SIZE 0
#endif

#define MAX_QUERIES 500
#define SMALL_QUERIES 32 /* up to this many rows live on the stack */
#define DB_TIMEOUT_NS 10000000000LL /* a request's database work, at most */

static te_pg_t *db;

/* ---- random numbers ---------------------------------------------------- */

static _Atomic uint64_t rng_state;

/* 1..10000, uniform enough (bias 2^-50) */
static int32_t rand_10000(void)
{
    uint64_t z = atomic_fetch_add_explicit(&rng_state, 0x9e3779b97f4a7c15ULL,
                                           memory_order_relaxed);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (int32_t)(z % 10000) + 1;
}

/* ---- responses --------------------------------------------------------- */

static void respond_error(may_http_res_t *res, int err)
{
    static const char unavailable[] = "database busy or unreachable\n";
    static const char failed[] = "database error\n";
    if (err == -ETIMEDOUT || err == -ECONNRESET || err == -ECONNABORTED)
        may_http_respond(res, 503, "text/plain", unavailable, sizeof unavailable - 1);
    else
        may_http_respond(res, 500, "text/plain", failed, sizeof failed - 1);
}

/* Serialise j (compact) and send it as application/json; frees j. */
static void respond_json(may_http_res_t *res, json_t *j)
{
    char small[4096];
    if (!j) {
        respond_error(res, -ENOMEM);
        return;
    }
    size_t n = json_dumpb(j, small, sizeof small, JSON_COMPACT);
    if (n == 0) {
        respond_error(res, -ENOMEM);
    } else if (n <= sizeof small) {
        may_http_respond(res, 200, "application/json", small, n);
    } else {
        char *big = malloc(n);
        if (big && json_dumpb(j, big, n, JSON_COMPACT) == n)
            may_http_respond(res, 200, "application/json", big, n);
        else
            respond_error(res, -ENOMEM);
        free(big);
    }
    json_decref(j);
}

static json_t *world_json(const te_world_t *w)
{
    json_t *o = json_object();
    if (o && (json_object_set_new(o, "id", json_integer(w->id)) < 0 ||
              json_object_set_new(o, "randomNumber", json_integer(w->randomnumber)) < 0)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static json_t *worlds_json(const te_world_t *w, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) {
        if (json_array_append_new(a, world_json(&w[i])) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

/* ---- the queries parameter ---------------------------------------------- */

/* queries=N from the query string: 1..500; missing, empty, not an integer
 * or below 1 gives 1, above 500 (however large) gives 500. */
static int queries_param(const char *q)
{
    const char *v = NULL;
    for (const char *p = q; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
        if (strncmp(p, "queries=", 8) == 0) {
            v = p + 8;
            break;
        }
    }
    if (!v)
        return 1;
    bool neg = *v == '-';
    if (*v == '-' || *v == '+')
        v++;
    long n = 0;
    const char *d = v;
    for (; *d >= '0' && *d <= '9'; d++)
        n = n > MAX_QUERIES ? n : n * 10 + (*d - '0');
    if (d == v || (*d && *d != '&') || neg || n < 1)
        return 1;
    return n > MAX_QUERIES ? MAX_QUERIES : (int)n;
}

/* ---- the handlers ------------------------------------------------------- */

static void handle_json(may_http_res_t *res)
{
    json_t *o = json_object();
    if (o && json_object_set_new(o, "message", json_string("Hello, World!")) < 0) {
        json_decref(o);
        o = NULL;
    }
    respond_json(res, o);
}

static void handle_db(may_http_res_t *res)
{
    te_world_t w = { .id = rand_10000() };
    int r = te_pg_worlds(db, &w, 1, may_deadline_in(DB_TIMEOUT_NS));
    if (r < 0)
        respond_error(res, r);
    else
        respond_json(res, world_json(&w));
}

static void handle_queries(may_http_req_t *req, may_http_res_t *res)
{
    te_world_t small[SMALL_QUERIES];
    int n = queries_param(may_http_query(req, NULL));
    te_world_t *w = n <= SMALL_QUERIES ? small : malloc((size_t)n * sizeof *w);
    if (!w) {
        respond_error(res, -ENOMEM);
        return;
    }
    for (int i = 0; i < n; i++)
        w[i].id = rand_10000();
    int r = te_pg_worlds(db, w, n, may_deadline_in(DB_TIMEOUT_NS));
    if (r < 0)
        respond_error(res, r);
    else
        respond_json(res, worlds_json(w, n));
    if (w != small)
        free(w);
}

static int by_id(const void *a, const void *b)
{
    const te_world_t *x = *(te_world_t *const *)a, *y = *(te_world_t *const *)b;
    if (x->id != y->id)
        return (x->id > y->id) - (x->id < y->id);
    return (x > y) - (x < y); /* stable: first occurrence first */
}

/* Read n rows one query each, give each a new random number, write them
 * in one statement (its own transaction), answer the new values.  The
 * same id drawn twice is one row: all its entries get the first one's new
 * number, so that the answer says what the table holds.  The statement
 * gets the rows sorted by id: concurrent updates then lock rows in one
 * order and cannot deadlock. */
static void handle_updates(may_http_req_t *req, may_http_res_t *res)
{
    struct {
        te_world_t w, row;
        te_world_t *order;
    } small[SMALL_QUERIES], *all;
    int n = queries_param(may_http_query(req, NULL));
    all = n <= SMALL_QUERIES ? small : malloc((size_t)n * sizeof *all);
    if (!all) {
        respond_error(res, -ENOMEM);
        return;
    }
    /* three arrays in the block of n entries: w (asked, then answered),
     * rows (sorted, distinct: the statement's), order (w sorted by id) */
    te_world_t *w = (te_world_t *)all, *rows = w + n;
    te_world_t **order = (te_world_t **)(rows + n);
    for (int i = 0; i < n; i++)
        w[i].id = rand_10000();
    int64_t deadline = may_deadline_in(DB_TIMEOUT_NS);
    int r = te_pg_worlds(db, w, n, deadline);
    if (r < 0) {
        respond_error(res, r);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        int32_t fresh;
        do /* a new value, as the rule asks ("updated to a new random integer") */
            fresh = rand_10000();
        while (fresh == w[i].randomnumber);
        w[i].randomnumber = fresh;
        order[i] = &w[i];
    }
    qsort(order, (size_t)n, sizeof *order, by_id);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m > 0 && rows[m - 1].id == order[i]->id)
            order[i]->randomnumber = rows[m - 1].randomnumber;
        else
            rows[m++] = *order[i];
    }
    r = te_pg_update(db, rows, m, deadline);
    if (r < 0)
        respond_error(res, r);
    else
        respond_json(res, worlds_json(w, n));
out:
    if (all != small)
        free(all);
}

/* A growable output buffer, starting in the caller's storage. */
typedef struct buf {
    char *p;
    size_t len, cap;
    bool heap, failed;
} buf_t;

static void buf_put(buf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2;
        char *p = b->heap ? realloc(b->p, cap) : malloc(cap);
        if (!p) {
            b->failed = true;
            return;
        }
        if (!b->heap)
            memcpy(p, b->p, b->len);
        b->p = p;
        b->cap = cap;
        b->heap = true;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}
#define BUF_LIT(b, s) buf_put((b), (s), sizeof(s) - 1)

/* The template's {{message}}: &, <, >, " and ' escaped, the rest (UTF-8
 * included) copied as is. */
static void buf_put_escaped(buf_t *b, const char *s, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e;
        switch (s[i]) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '"': e = "&quot;"; break;
        case '\'': e = "&#39;"; break;
        default: continue;
        }
        buf_put(b, s + from, i - from);
        buf_put(b, e, strlen(e));
        from = i + 1;
    }
    buf_put(b, s + from, n - from);
}

typedef struct fortune {
    const char *id; /* decimal, as the database sent it */
    const char *message;
    size_t len;
} fortune_t;

static int by_message(const void *a, const void *b)
{
    const fortune_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->message, y->message, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void handle_fortunes(may_http_res_t *res)
{
    static const char extra[] = "Additional fortune added at request time.";
    PGresult *rows = NULL;
    int r = te_pg_fortunes(db, &rows, may_deadline_in(DB_TIMEOUT_NS));
    if (r < 0) {
        respond_error(res, r);
        return;
    }
    /* the list is sized by what came, not by foreknowledge of the table */
    int n = PQntuples(rows);
    fortune_t *f = malloc(((size_t)n + 1) * sizeof *f);
    if (!f) {
        PQclear(rows);
        respond_error(res, -ENOMEM);
        return;
    }
    for (int i = 0; i < n; i++) {
        f[i].id = PQgetvalue(rows, i, 0);
        f[i].message = PQgetvalue(rows, i, 1);
        f[i].len = (size_t)PQgetlength(rows, i, 1);
    }
    f[n] = (fortune_t){ .id = "0", .message = extra, .len = sizeof extra - 1 };
    qsort(f, (size_t)n + 1, sizeof *f, by_message);

    char storage[4096];
    buf_t b = { .p = storage, .cap = sizeof storage };
    BUF_LIT(&b, "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
                "<tr><th>id</th><th>message</th></tr>");
    for (int i = 0; i <= n; i++) {
        BUF_LIT(&b, "<tr><td>");
        buf_put(&b, f[i].id, strlen(f[i].id));
        BUF_LIT(&b, "</td><td>");
        buf_put_escaped(&b, f[i].message, f[i].len);
        BUF_LIT(&b, "</td></tr>");
    }
    BUF_LIT(&b, "</table></body></html>");
    if (b.failed)
        respond_error(res, -ENOMEM);
    else
        may_http_respond(res, 200, "text/html; charset=utf-8", b.p, b.len);
    if (b.heap)
        free(b.p);
    free(f);
    PQclear(rows);
}

static void handler(may_http_req_t *req, may_http_res_t *res, void *arg)
{
    (void)arg;
    const char *path = may_http_path(req, NULL);
    if (strcmp(path, "/plaintext") == 0)
        may_http_respond(res, 200, "text/plain", "Hello, World!", 13);
    else if (strcmp(path, "/json") == 0)
        handle_json(res);
    else if (strcmp(path, "/db") == 0)
        handle_db(res);
    else if (strcmp(path, "/queries") == 0)
        handle_queries(req, res);
    else if (strcmp(path, "/fortunes") == 0)
        handle_fortunes(res);
    else if (strcmp(path, "/updates") == 0)
        handle_updates(req, res);
    else
        may_http_respond(res, 404, "text/plain", "Not Found\n", 10);
}

/* ---- main --------------------------------------------------------------- */

static const char usage[] =
    "usage: techempower [PORT [CONNINFO]]\n"
    "  PORT      TCP port on 0.0.0.0 (default 8080; 0: any free port)\n"
    "  CONNINFO  libpq connection string or URI (default $DATABASE_URL, else\n"
    "            $MAY_TEST_PG_CONNINFO, else libpq's PG* variables)\n"
    "Environment: TE_DB_CONNS database connections (default: the workers),\n"
    "MAY_WORKERS worker threads.  Prints 'techempower: listening on PORT' when\n"
    "ready; SIGINT or SIGTERM stops it.  Routes: /plaintext /json /db\n"
    "/queries?queries=N /fortunes /updates?queries=N (TechEmpower's).\n"
    "apps/techempower/with_db.sh techempower ... runs it with a private\n"
    "PostgreSQL loaded with TechEmpower's tables.\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 2, usage);
    long port = argc > 1 ? usage_long(argv[1], 0, 65535, usage) : 8080;
    const char *conninfo = argc > 2 ? argv[2] : getenv("DATABASE_URL");
    if (!conninfo || !*conninfo)
        conninfo = getenv("MAY_TEST_PG_CONNINFO");
    if (!conninfo)
        conninfo = ""; /* libpq's PG* variables and defaults */
    int conns = 0;
    const char *e = getenv("TE_DB_CONNS");
    if (e && *e)
        conns = (int)usage_long(e, 1, 1024, usage);

    /* SIGINT and SIGTERM arrive on a signalfd: blocked before the runtime
     * starts, so every worker thread inherits the mask. */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &stop_sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        perror("techempower: signalfd");
        return 1;
    }
    if (conns == 0)
        conns = may_workers(); /* starts the runtime: after the mask */
    rng_state = (uint64_t)may_now() ^ ((uint64_t)getpid() << 32);
    json_object_seed(0);

    char err[512];
    int r = te_pg_open(&db, &(te_pg_config_t){ .conninfo = conninfo, .conns = conns }, err,
                       sizeof err);
    if (r < 0) {
        fprintf(stderr, "techempower: database: %s\n", err[0] ? err : strerror(-r));
        return 1;
    }
    char addr[32];
    snprintf(addr, sizeof addr, "0.0.0.0:%ld", port);
    int lfd = may_tcp_listen(addr, 4096, 0);
    if (lfd < 0) {
        fprintf(stderr, "techempower: listen %s: %s\n", addr, strerror(-lfd));
        te_pg_close(db);
        return 1;
    }
    may_http_server_t *srv;
    r = may_http_start(&srv, lfd,
                       &(may_http_config_t){ .handler = handler, .stack_size = TE_STACK_SIZE });
    if (r < 0) {
        fprintf(stderr, "techempower: start: %s\n", strerror(-r));
        te_pg_close(db);
        return 1;
    }
    printf("techempower: %d workers, %d database connections\n", may_workers(), conns);
    printf("techempower: listening on %d\n", may_tcp_local_port(lfd));
    fflush(stdout);

    struct signalfd_siginfo si;
    while ((r = may_fd_wait(sfd, MAY_READ, MAY_FOREVER)) >= 0 &&
           read(sfd, &si, sizeof si) != (ssize_t)sizeof si)
        ;
    r = may_http_stop(srv, may_deadline_in(2000000000LL));
    te_pg_stats_t st;
    te_pg_stats(db, &st);
    te_pg_close(db);
    may_tcp_close(lfd);
    may_fd_close(sfd);
    printf("techempower: done: %llu database jobs, %llu queries in %llu batches, %llu syncs, "
           "%llu reconnects, %llu errors\n",
           (unsigned long long)st.jobs, (unsigned long long)st.queries,
           (unsigned long long)st.batches, (unsigned long long)st.syncs,
           (unsigned long long)st.reconnects, (unsigned long long)st.errors);
    return may_shutdown() == 0 && r == 0 ? 0 : 1;
}
