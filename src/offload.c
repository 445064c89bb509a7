/*
 * offload.c - a pool of helper threads for calls that can only block
 * (getaddrinfo, file I/O, libraries with no non-blocking API), and the name
 * resolution and file helpers built on it.
 *
 * Why.  A coroutine that calls getaddrinfo or pread blocks its worker: every
 * coroutine queued there waits too, and with one worker the whole runtime
 * stops.  The reactor cannot help (regular files are always "ready"; the
 * resolver has no descriptor to poll), so such a call is handed to a helper
 * thread and the caller parks (internal.h, "parker") until it is done; its
 * worker runs other coroutines meanwhile.  A plain thread uses the same pool
 * and sleeps on its futex, so a deadline means the same thing from both.
 * This is Go's answer for cgo/getaddrinfo (extra Ms) and tokio's
 * spawn_blocking; io_uring would avoid the threads for file I/O but not for
 * the resolver, and is a later optimisation behind the same calls.
 *
 * Bounds.  Helpers start on demand, one per job that finds no idle helper,
 * up to max_threads; a helper idle for IDLE_NS exits, so an idle runtime has
 * no helper threads and no wake-ups.  At most max_threads + max_queue jobs
 * are in flight (running, abandoned and still running, or queued); one more
 * fails at once with -EAGAIN rather than queueing without limit.
 *
 * A job and who owns it.  The job record is heap memory shared by the caller
 * and the helper, and the caller's waiter node (waitq.h: P.q is a wait
 * queue, and the protocol is every wait queue's, with one state more); its
 * state (under P.lock) says who frees it:
 *
 *   QUEUED     on P.q (the node's WAITING); the caller may still take it
 *              back (deadline, cancel) and then frees it: fn never runs
 *   RUNNING    a helper runs fn; both hold it (off the queue, not claimed:
 *              owed a wake only if the caller stays)
 *   DONE       fn returned and the helper has claimed the node (the grant);
 *              the caller owns the job (and the result) once woken
 *   ABANDONED  the caller gave up while fn ran; the helper owns the job and
 *              frees it (and calls the drop hook) when fn returns
 *
 * A caller whose wait fails takes P.lock and looks: QUEUED, it unlinks the
 * job and returns the error; RUNNING, it marks the job ABANDONED and returns
 * at once (unless the job is "uninterruptible": file I/O into the caller's
 * buffer, where it waits for the end instead); DONE, the helper has decided
 * to wake it, so it waits for that wake (ignoring cancellation: the wake is
 * certain and quick) and returns the result as a success.  After its return
 * nothing touches the caller's parker or memory: a helper reads the node's
 * parker under the lock and wakes it only if the job was not abandoned, and
 * the caller never returns between that decision and the wake.
 *
 * Idle helpers sit on a LIFO stack (the most recently busy helper is reused
 * first, so surplus helpers stay idle long enough to time out).  A helper is
 * woken by whoever pops it, with may__wake on its own thread parker, under
 * P.lock: a helper that timed out and finds itself still on the stack (under
 * the same lock) knows no wake is in flight and may exit and free itself.
 *
 * Exit and shutdown.  A helper that exits on its own (idle timeout, or above
 * a lowered max_threads) leaves itself as P.zombie and joins the previous
 * zombie, so at most one finished thread waits to be joined.
 * may__offload_shutdown sets P.stopping (new jobs get -EAGAIN), wakes the
 * idle helpers, and joins every helper: those still running a job (an
 * abandoned one included) finish it and drain the queue first.  So after
 * may_shutdown no helper thread runs library code (the library may be
 * unloaded) and nothing stays allocated; the cost is that shutdown waits for
 * abandoned calls still running.  The pool starts again on next use.
 *
 * Lock order: glibc's atfork lock -> P.lock (fork_prepare takes P.lock so a
 * child never inherits it held).  P.lock is otherwise a leaf, except that it
 * is held across pthread_create, malloc, and may__wake of a helper's thread
 * parker (a futex wake; no scheduler lock).  A helper wakes a coroutine caller (which
 * takes scheduler locks) only after dropping P.lock.  fn never runs under
 * any lock.
 *
 * Memory ordering: everything in P and the job's queue links, state and
 * parker are under P.lock.  The state is also read without the lock by a
 * woken caller: the helper stores the result and then claims the node with
 * DONE (release) before its wake, and may__wake/may__wait's acq_rel CAS on
 * the parker word orders them before the caller's load (acquire).  The helper reads fn's inputs
 * after taking P.lock, which the caller released after queueing the job.
 */
#include "internal.h"
#include "waitq.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>


#define IDLE_NS (10LL * 1000000000) /* an idle helper exits after this */
#define DEFAULT_THREADS 64
#define DEFAULT_QUEUE 1024
#define MAX_THREADS 4096

/* The job's state is its node's (QUEUED is MAY__WN_WAITING, DONE the grant). */
enum { J_QUEUED = MAY__WN_WAITING, J_RUNNING, J_DONE, J_ABANDONED };

typedef void (*drop_fn)(void *arg, void *result, bool ran);

typedef struct job {
    may__wnode wn;           /* links in P.q while QUEUED; the caller's parker;
                                state J_*: written under P.lock, DONE with
                                release (the claim) */
    void *(*fn)(void *);     /* the call */
    void *arg;               /* its argument */
    void *result;            /* what fn returned, once DONE */
    drop_fn drop;            /* run when the caller gave up (may be NULL) */
    int uninterruptible;     /* once RUNNING, the caller waits for the end */
} job;

typedef struct helper {
    struct helper *next;      /* in P.all */
    struct helper *idle_next; /* in P.idle while idle */
    pthread_t thread;
    may__parker parker;       /* a thread parker (co == NULL) */
    int idle;                 /* on P.idle; whoever clears it wakes parker */
} helper;

static struct {
    pthread_mutex_t lock;
    int inited;              /* defaults read from the environment */
    int max_threads, max_queue;
    int nthreads;            /* helpers on P.all */
    int njobs;               /* queued + running (abandoned included) */
    int stopping;            /* may__offload_shutdown is in progress */
    may__waitq q;            /* FIFO of QUEUED jobs */
    helper *all;             /* every helper not yet exited */
    helper *idle;            /* idle helpers, most recently idle first */
    helper *zombie;          /* exited on its own, not yet joined */
} P = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- queue and configuration (P.lock must be held) ---------------------- */

static int env_threads(void)
{
    const char *s = getenv("MAY_OFFLOAD_THREADS");
    if (!s || !*s)
        return DEFAULT_THREADS;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1 || v > MAX_THREADS)
        return DEFAULT_THREADS;
    return (int)v;
}

/* fork: the child has none of the helpers, so it starts with an empty pool
 * (the records are freed; queued jobs belonged to threads it lacks). */
static void fork_prepare(void)
{
    pthread_mutex_lock(&P.lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&P.lock);
}

static void fork_child(void)
{
    while (P.all) {
        helper *h = P.all;
        P.all = h->next;
        free(h);
    }
    free(P.zombie);
    P.zombie = NULL;
    P.idle = NULL;
    P.q = (may__waitq){ NULL, NULL, 0 };
    P.nthreads = P.njobs = P.stopping = 0;
    pthread_mutex_init(&P.lock, NULL);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_register(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Not under P.lock: fork runs fork_prepare under glibc's atfork lock, so
 * registering under P.lock would invert that order. */
static void atfork_once_init(void)
{
    pthread_once(&atfork_once, atfork_register);
}

static void init_locked(void)
{
    if (P.inited)
        return;
    P.inited = 1;
    P.max_threads = env_threads();
    P.max_queue = DEFAULT_QUEUE;
}

/* Wake an idle helper (P.lock held; see the essay for why under it). */
static void wake_idle_locked(helper *h)
{
    h->idle = 0;
    may__wake(&h->parker, MAY__P_WTOKEN);
}

static void helper_idle_remove_locked(helper *h)
{
    helper **pp = &P.idle;
    while (*pp != h)
        pp = &(*pp)->idle_next;
    *pp = h->idle_next;
    h->idle = 0;
}

static void all_remove_locked(helper *h)
{
    helper **pp = &P.all;
    while (*pp != h)
        pp = &(*pp)->next;
    *pp = h->next;
    P.nthreads--;
}

int may_offload_config(int max_threads, int max_queue)
{
    if (max_threads < 0 || max_threads > MAX_THREADS || max_queue < 0 || max_queue > INT_MAX / 2)
        return -EINVAL;
    atfork_once_init();
    pthread_mutex_lock(&P.lock);
    init_locked();
    P.max_threads = max_threads ? max_threads : env_threads();
    P.max_queue = max_queue ? max_queue : DEFAULT_QUEUE;
    /* Idle helpers above the new maximum exit once woken. */
    while (P.idle && P.nthreads > P.max_threads) {
        helper *h = P.idle;
        P.idle = h->idle_next;
        wake_idle_locked(h);
    }
    pthread_mutex_unlock(&P.lock);
    return 0;
}

/* ---- helper threads ----------------------------------------------------- */

/* Run one job taken off the queue; called and returns with P.lock held. */
static void run_job(job *j)
{
    atomic_store_explicit(&j->wn.state, J_RUNNING, memory_order_relaxed);
    pthread_mutex_unlock(&P.lock);
    void *res = j->fn(j->arg);
    pthread_mutex_lock(&P.lock);
    P.njobs--;
    if (atomic_load_explicit(&j->wn.state, memory_order_relaxed) == J_ABANDONED) {
        pthread_mutex_unlock(&P.lock);
        if (j->drop)
            j->drop(j->arg, res, true);
        free(j);
    } else {
        j->result = res;
        /* release (the claim): pairs with the caller's acquire load after
         * its wake */
        may__parker *p = may__wnode_claim(&j->wn, J_DONE);
        pthread_mutex_unlock(&P.lock);
        /* From here the caller owns j; we touch only its parker, which it
         * keeps until this wake arrives. */
        may__wake_claimed(p);
    }
    pthread_mutex_lock(&P.lock);
}

static void *helper_main(void *arg)
{
    helper *h = arg;
    pthread_setname_np(pthread_self(), "may-offload");
    pthread_mutex_lock(&P.lock);
    int timed_out = 0;
    for (;;) {
        may__wnode *n = may__waitq_pop(&P.q);
        if (n) {
            run_job(may__wnode_entry(n, job, wn));
            timed_out = 0;
            continue;
        }
        if (P.stopping || timed_out || P.nthreads > P.max_threads)
            break;
        may__wait_prepare(&h->parker); /* a stale wake from an earlier pop */
        h->idle = 1;
        h->idle_next = P.idle;
        P.idle = h;
        int64_t until = may__now() + IDLE_NS;
        while (h->idle) {
            pthread_mutex_unlock(&P.lock);
            int r = may__wait(&h->parker, until, 1);
            pthread_mutex_lock(&P.lock);
            if (h->idle && r == -ETIMEDOUT) {
                helper_idle_remove_locked(h); /* nobody popped us: no wake in flight */
                timed_out = 1;
            }
        }
    }
    if (P.stopping) {
        /* may__offload_shutdown joins us and frees h */
        pthread_mutex_unlock(&P.lock);
        return NULL;
    }
    all_remove_locked(h);
    helper *z = P.zombie;
    P.zombie = h;
    pthread_mutex_unlock(&P.lock);
    if (z) {
        pthread_join(z->thread, NULL);
        free(z);
    }
    return NULL;
}

/* Start one more helper.  P.lock must be held: the new thread blocks on it
 * until h is on P.all, and shutdown never sees a half-made helper. */
static int spawn_helper_locked(void)
{
    helper *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    /* Helpers take no asynchronous signals: those belong to the program's
     * own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&h->thread, NULL, helper_main, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        free(h);
        return -e;
    }
    h->next = P.all;
    P.all = h;
    P.nthreads++;
    return 0;
}

void may__offload_shutdown(void)
{
    pthread_mutex_lock(&P.lock);
    if (P.stopping) { /* another shutdown is in progress */
        pthread_mutex_unlock(&P.lock);
        return;
    }
    P.stopping = 1;
    while (P.idle) {
        helper *h = P.idle;
        P.idle = h->idle_next;
        wake_idle_locked(h);
    }
    /* P.all and P.zombie change no more: helpers seeing stopping exit
     * without unlinking, and no helper starts while stopping. */
    helper *list = P.all, *z = P.zombie;
    pthread_mutex_unlock(&P.lock);
    while (list) {
        helper *h = list;
        list = h->next;
        pthread_join(h->thread, NULL);
        free(h);
    }
    if (z) {
        pthread_join(z->thread, NULL);
        free(z);
    }
    pthread_mutex_lock(&P.lock);
    P.all = NULL;
    P.zombie = NULL;
    P.nthreads = 0;
    P.stopping = 0;
    pthread_mutex_unlock(&P.lock);
}

/* ---- submitting and waiting --------------------------------------------- */

/* Wait for a claimed job's wake-up (see the essay): certain to come. */
static void wait_done(job *j)
{
    while (may__wnode_park_claimed(&j->wn) != J_DONE)
        ;
}

static int offload(void *(*fn)(void *), void *arg, int64_t deadline, void **result, drop_fn drop,
                   int uninterruptible)
{
    int r;
    if (!fn) {
        r = -EINVAL;
        goto out_drop;
    }
    may__parker *p = may__self_parker();
    if (may__wait_cancelled(p)) {
        r = -ECANCELED;
        goto out_drop;
    }
    if (deadline >= 0 && deadline <= may__now()) {
        r = -ETIMEDOUT; /* it cannot start in time */
        goto out_drop;
    }
    job *j = malloc(sizeof *j);
    if (!j) {
        r = -ENOMEM;
        goto out_drop;
    }
    *j = (job){ .fn = fn, .arg = arg, .drop = drop, .uninterruptible = uninterruptible };
    may__wnode_arm(&j->wn, p); /* J_QUEUED */

    atfork_once_init();
    pthread_mutex_lock(&P.lock);
    init_locked();
    if (P.stopping || P.njobs >= P.max_threads + P.max_queue) {
        r = -EAGAIN;
        goto out_unlock;
    }
    may__waitq_push(&P.q, &j->wn);
    P.njobs++;
    if (P.idle) {
        helper *h = P.idle;
        P.idle = h->idle_next;
        wake_idle_locked(h);
    } else if (P.nthreads < P.max_threads) {
        r = spawn_helper_locked();
        if (r < 0 && P.nthreads == 0) {
            /* nobody could ever run it; with helpers left, it waits */
            may__waitq_unlink(&P.q, &j->wn);
            P.njobs--;
            r = r == -ENOMEM ? r : -EAGAIN;
            goto out_unlock;
        }
    }
    pthread_mutex_unlock(&P.lock);

    may__wait_note(p, "offload", (const void *)j);
    for (;;) {
        r = may__wnode_park(&j->wn, deadline, 0);
        if (r == 0) {
            /* relaxed: may__wnode_park read it with acquire */
            if (atomic_load_explicit(&j->wn.state, memory_order_relaxed) == J_DONE)
                break;
            continue; /* RUNNING: not ours (cannot happen: only run_job wakes p) */
        }
        pthread_mutex_lock(&P.lock);
        if (may__waitq_abandon_locked(&P.q, &j->wn)) {
            P.njobs--;
            goto out_unlock; /* it was QUEUED: fn never runs */
        }
        if (atomic_load_explicit(&j->wn.state, memory_order_relaxed) == J_RUNNING &&
            !uninterruptible) {
            atomic_store_explicit(&j->wn.state, J_ABANDONED, memory_order_relaxed);
            pthread_mutex_unlock(&P.lock);
            return r; /* the helper frees j and calls drop */
        }
        pthread_mutex_unlock(&P.lock);
        /* DONE: the wake is on its way; RUNNING and uninterruptible: the
         * caller's buffer is in use, so wait for the end. */
        wait_done(j);
        break;
    }
    if (result)
        *result = j->result;
    free(j);
    return 0;

out_unlock:
    pthread_mutex_unlock(&P.lock);
    free(j);
out_drop:
    if (drop)
        drop(arg, NULL, false);
    return r;
}

int may_offload(void *(*fn)(void *), void *arg, void **result, int64_t deadline)
{
    return offload(fn, arg, deadline, result, NULL, 0);
}

int may_offload_ex(void *(*fn)(void *), void *arg, void **result,
                   void (*drop)(void *arg, void *result, bool ran), int64_t deadline)
{
    return offload(fn, arg, deadline, result, drop, 0);
}

/* ---- name resolution ---------------------------------------------------- */

/* getaddrinfo's EAI_* codes as negative errno values (documented in may.h). */
static int gai_errno(int rc, int sys_errno)
{
    switch (rc) {
    case 0:
        return 0;
    case EAI_NONAME:
    case EAI_SERVICE:
        return -ENOENT;
#ifdef EAI_NODATA
    case EAI_NODATA:
        return -ENODATA;
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
        return -ENODATA;
#endif
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_FAIL:
        return -EIO;
    case EAI_FAMILY:
        return -EAFNOSUPPORT;
    case EAI_SOCKTYPE:
        return -ESOCKTNOSUPPORT;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_BADFLAGS:
        return -EINVAL;
    case EAI_OVERFLOW:
        return -ENAMETOOLONG;
    case EAI_SYSTEM:
        return sys_errno > 0 ? -sys_errno : -EIO;
    default:
        return -EIO;
    }
}

#define HOST_MAX 1024 /* NI_MAXHOST - 1 */
#define PORT_MAX 64

typedef struct resolve_req {
    struct addrinfo hints;
    int rc; /* negative errno or 0 */
    socklen_t len;
    struct sockaddr_storage addr;
    const char *host, *port; /* into strs; NULL for none */
    char strs[];
} resolve_req;

/* getaddrinfo, keeping the first address.  0 or -errno. */
static int gai_first(resolve_req *q)
{
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(q->host, q->port, &q->hints, &ai);
    int e = errno;
    if (rc != 0)
        return gai_errno(rc, e);
    if (!ai || ai->ai_addrlen > sizeof q->addr) {
        freeaddrinfo(ai);
        return -ENODATA;
    }
    memcpy(&q->addr, ai->ai_addr, ai->ai_addrlen);
    q->len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static void *resolve_job(void *arg)
{
    resolve_req *q = arg;
    q->rc = gai_first(q);
    return NULL;
}

static void resolve_drop(void *arg, void *result, bool ran)
{
    (void)result;
    (void)ran;
    free(arg);
}

int may_resolve(const char *host, const char *port, int family, int socktype,
                struct sockaddr_storage *out, socklen_t *outlen, int64_t deadline)
{
    if (!out || (family != AF_UNSPEC && family != AF_INET && family != AF_INET6))
        return -EINVAL;
    if (host && !*host)
        host = NULL;
    if (port && !*port)
        port = NULL;
    if (!host && !port)
        return -EINVAL;
    size_t hl = host ? strlen(host) : 0, pl = port ? strlen(port) : 0;
    if (hl > HOST_MAX || pl > PORT_MAX)
        return -ENAMETOOLONG;
    resolve_req *q = malloc(sizeof *q + hl + pl + 2);
    if (!q)
        return -ENOMEM;
    memset(q, 0, sizeof *q);
    memcpy(q->strs, host ? host : "", hl + 1);
    memcpy(q->strs + hl + 1, port ? port : "", pl + 1);
    q->host = host ? q->strs : NULL;
    q->port = port ? q->strs + hl + 1 : NULL;
    q->hints.ai_family = family;
    q->hints.ai_socktype = socktype;
    q->hints.ai_flags = host ? 0 : AI_PASSIVE;

    /* Numeric host and port: no lookup, so no helper. */
    q->hints.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    int r = gai_first(q);
    q->hints.ai_flags &= ~(AI_NUMERICHOST | AI_NUMERICSERV);
    if (r == -ENOENT) {
        /* A name to look up: on the pool.  On failure the drop hook owns q. */
        r = may_offload_ex(resolve_job, q, NULL, resolve_drop, deadline);
        if (r < 0)
            return r;
        r = q->rc;
    }
    if (r == 0) {
        *out = q->addr;
        if (outlen)
            *outlen = q->len;
    }
    free(q);
    return r;
}

/* The one grammar of "host:port" (may.h): "host:port", "[v6addr]:port" or
 * ":port".  Every call that takes an address comes through here (through
 * may__host_port_addrs below), so they all accept and refuse the same
 * strings with the same errors. */
int may_parse_host_port(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    if (!s || !host || !port || !hostlen || !portlen)
        return -EINVAL;
    const char *h, *he, *pp;
    if (*s == '[') {
        h = s + 1;
        he = strchr(h, ']');
        if (!he || he[1] != ':')
            return -EINVAL;
        if (he == h || memchr(h, '[', (size_t)(he - h)))
            return -EINVAL;
        pp = he + 2;
    } else {
        h = s;
        he = strchr(s, ':');
        if (!he)
            return -EINVAL; /* missing port */
        pp = he + 1;
        if (strchr(pp, ':'))
            return -EINVAL; /* too many colons: an IPv6 address needs [] */
        if (memchr(h, '[', (size_t)(he - h)) || memchr(h, ']', (size_t)(he - h)))
            return -EINVAL;
    }
    if (!*pp || strpbrk(pp, "[]:"))
        return -EINVAL;
    size_t hl = (size_t)(he - h), pl = strlen(pp);
    if (hl >= hostlen || pl >= portlen)
        return -ENAMETOOLONG;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, pp, pl + 1);
    return 0;
}

/* "localhost" names loopback (RFC 6761, section 6.3): recognised here, not
 * looked up, so neither /etc/hosts nor a DNS answer can point it elsewhere,
 * and no helper thread is needed. */
static int host_is_localhost(const char *h)
{
    return strcasecmp(h, "localhost") == 0 || strcasecmp(h, "localhost.") == 0;
}

/* The address `numeric` (a literal of family fam) with the port of `like`. */
static void addr_with_port(const char *numeric, int fam, const struct sockaddr_storage *like,
                           struct sockaddr_storage *out, socklen_t *len)
{
    uint16_t port = like->ss_family == AF_INET ? ((const struct sockaddr_in *)like)->sin_port
                                               : ((const struct sockaddr_in6 *)like)->sin6_port;
    memset(out, 0, sizeof *out);
    if (fam == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;
        s4->sin_family = AF_INET;
        s4->sin_port = port;
        inet_pton(AF_INET, numeric, &s4->sin_addr);
        *len = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = port;
        inet_pton(AF_INET6, numeric, &s6->sin6_addr);
        *len = sizeof *s6;
    }
}

/* See internal.h.  The two-address cases ("localhost", ":port") are fixed
 * literals: loopback IPv4 first (what Go's net.Listen("tcp",
 * "localhost:0") binds), then IPv6; the wildcard IPv6 first (dual stack, so
 * it covers IPv4 too), then IPv4.  The port is resolved once, with the
 * first address; a service name goes to the pool like a host name. */
int may__host_port_addrs(const char *hp, int family, int socktype, bool passive, may__addrs *out,
                         int64_t deadline)
{
    char host[HOST_MAX + 1], port[PORT_MAX + 1];
    out->n = 0;
    int r = may_parse_host_port(hp, host, sizeof host, port, sizeof port);
    if (r < 0)
        return r;
    if (host[0] && !host_is_localhost(host)) {
        r = may_resolve(host, port, family, socktype, &out->addr[0], &out->len[0], deadline);
        out->n = r == 0;
        return r;
    }
    static const char *const loopback[2] = { "127.0.0.1", "::1" }, *const any[2] = { "::", "0.0.0.0" };
    const char *const *lit = !host[0] && passive ? any : loopback;
    for (int i = 0; i < 2; i++) {
        int fam = strchr(lit[i], ':') ? AF_INET6 : AF_INET;
        if (family != AF_UNSPEC && family != fam)
            continue;
        if (out->n == 0) {
            r = may_resolve(lit[i], port, fam, socktype, &out->addr[0], &out->len[0], deadline);
            if (r < 0)
                return r;
        } else {
            addr_with_port(lit[i], fam, &out->addr[0], &out->addr[1], &out->len[1]);
        }
        out->n++;
    }
    return 0;
}

/* ---- file I/O ----------------------------------------------------------- */

enum { F_READ, F_WRITE, F_FSYNC };

typedef struct file_req {
    int op;         /* F_* */
    int fd;
    void *buf;      /* the caller's buffer */
    size_t n;
    int64_t off;    /* -1: the file offset */
    ssize_t ret;    /* bytes or -errno */
} file_req;

static void *file_job(void *arg)
{
    file_req *q = arg;
    ssize_t r;
    do {
        switch (q->op) {
        case F_READ:
            r = q->off < 0 ? read(q->fd, q->buf, q->n) : pread(q->fd, q->buf, q->n, (off_t)q->off);
            break;
        case F_WRITE:
            r = q->off < 0 ? write(q->fd, q->buf, q->n)
                           : pwrite(q->fd, q->buf, q->n, (off_t)q->off);
            break;
        default:
            r = fsync(q->fd);
            break;
        }
    } while (r < 0 && errno == EINTR);
    q->ret = r < 0 ? -errno : r;
    return NULL;
}

/* The request lives on the caller's stack: the job is uninterruptible once
 * started, so the caller outlives it. */
static ssize_t file_op(file_req *q, int64_t deadline)
{
    if (q->fd < 0 || (q->off < -1))
        return -EINVAL;
    if (q->n > SSIZE_MAX)
        q->n = SSIZE_MAX;
    int r = offload(file_job, q, deadline, NULL, NULL, 1);
    return r < 0 ? r : q->ret;
}

ssize_t may_file_read(int fd, void *buf, size_t n, int64_t off, int64_t deadline)
{
    file_req q = { .op = F_READ, .fd = fd, .buf = buf, .n = n, .off = off };
    return file_op(&q, deadline);
}

ssize_t may_file_write(int fd, const void *buf, size_t n, int64_t off, int64_t deadline)
{
    file_req q = { .op = F_WRITE, .fd = fd, .buf = (void *)buf, .n = n, .off = off };
    return file_op(&q, deadline);
}

int may_file_fsync(int fd, int64_t deadline)
{
    file_req q = { .op = F_FSYNC, .fd = fd, .off = -1 };
    return (int)file_op(&q, deadline);
}

typedef struct open_req {
    int flags;
    mode_t mode;
    int ret; /* fd or -errno */
    char path[];
} open_req;

static void *open_job(void *arg)
{
    open_req *q = arg;
    int fd;
    do
        fd = open(q->path, q->flags, q->mode);
    while (fd < 0 && errno == EINTR);
    q->ret = fd < 0 ? -errno : fd;
    return NULL;
}

/* An abandoned open must not leak the descriptor it made. */
static void open_drop(void *arg, void *result, bool ran)
{
    (void)result;
    open_req *q = arg;
    if (ran && q->ret >= 0)
        close(q->ret);
    free(q);
}

int may_file_open(const char *path, int flags, mode_t mode, int64_t deadline)
{
    if (!path)
        return -EINVAL;
    size_t len = strlen(path);
    if (len >= PATH_MAX)
        return -ENAMETOOLONG;
    open_req *q = malloc(sizeof *q + len + 1);
    if (!q)
        return -ENOMEM;
    q->flags = flags;
    q->mode = mode;
    q->ret = -EIO;
    memcpy(q->path, path, len + 1);
    /* Abandonable (a FIFO or a hung NFS server can block open forever): the
     * request is heap memory and open_drop closes a late descriptor. */
    int r = may_offload_ex(open_job, q, NULL, open_drop, deadline);
    if (r < 0)
        return r;
    r = q->ret;
    free(q);
    return r;
}
