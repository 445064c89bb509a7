/* fuzz_sched.c - random programs of coroutine and channel operations,
 * checked against invariants.
 *
 * The input is a program.  A few header bytes make 1-4 channels; the rest is
 * the root actor's code, which the root runs (as a coroutine, or on the
 * fuzzer's own thread) byte by byte.  An actor can spawn children, each
 * running a slice of its parent's code, so an input is a tree of coroutines
 * exchanging messages on the shared channels.  Everything is bounded: at
 * most FZ_MAX_OPS operations and FZ_MAX_ACTORS coroutines per input, waits of
 * microseconds, and a "closer" coroutine that closes every channel a moment
 * (200 us - 2 ms) after the start, which wakes whatever still waits without
 * a deadline.  The runtime (2 workers) stays up across inputs.
 *
 * Encoding (every operand byte past the end reads as 0):
 *
 *   header   H C1..Cn   n = 1 + (H & 3) channels; H & 4: the root runs on
 *                       the fuzzer's thread (a plain thread), else as a
 *                       coroutine; (H >> 3) & 3: when the closer fires
 *                       (200, 500, 1000, 2000 us).  Ci: capacity
 *                       {0, 1, 2, 3, 8, unbounded}[(Ci & 7) % 6], element
 *                       size {8, 24, 64, 0}[(Ci >> 3) & 3].
 *   code     op byte, then its operands; op & 15:
 *     0  SPAWN F L   a child runs the next L bytes (the parent skips them);
 *                    F & 3: default options, a name, MAY_SPAWN_WORKER or
 *                    MAY_SPAWN_PINNED on worker (F >> 2) & 1
 *     1  JOIN S D    join the child in slot S % 6 with deadline D
 *     2  CANCEL S    cancel the child in slot S % 6
 *     3  YIELD
 *     4  SLEEP U     sleep U & 63 microseconds
 *     5,6 SEND C D   send a fresh message on channel C % n
 *     7,8 RECV C D
 *     9  TRY B       B & 1: trysend, else tryrecv, on channel (B >> 1) % n
 *     10 CLOSE C
 *     11,12 SELECT N K1..Km D   m = 1 + (N & 3) (+14 if N & 0x80: over the
 *                    16 cases select keeps on its stack) cases; Ki & 3:
 *                    none, recv, send, or (Ki & 0x80 ? an invalid op : recv
 *                    on a NULL channel); channel (Ki >> 2) % n
 *     13 CHECK       channel lengths, capacities, closed flags, may_self,
 *                    may_worker_id (a pinned child stays on its worker)
 *     14 SELF B      B & 1: cancel itself (coroutines only), else yield
 *     15 JOINALL     join every child, no deadline
 *   deadlines D: D & 3 = 0: MAY_NOWAIT, 1: already past, 2: 2-128 us from
 *   now, 3: MAY_FOREVER.
 *
 * Invariants (abort() on a violation, so libFuzzer reports it):
 * - Messages: every message carries a fresh id and a pattern that depends on
 *   it.  A receive yields a message that was sent on that channel, intact,
 *   and never twice; one receiver sees each sender's messages on a channel
 *   in the order they were sent.  After every actor ended, the channels are
 *   closed and drained: each send that returned 0 was received exactly
 *   once, each that failed was never received (zero-size elements: the
 *   counts match).  A failed receive, or a select case not chosen, leaves
 *   its buffer untouched; a select performs exactly its chosen case.
 * - Results are in the documented sets; -ETIMEDOUT never before the deadline
 *   and never with MAY_FOREVER; -ECANCELED only in a cancelled coroutine;
 *   -EPIPE only once the channel's close began; a send that began after a
 *   close returned never succeeds; exactly one close of a channel succeeds;
 *   a sleep lasts at least as asked; a self-cancelled coroutine's sleep
 *   fails with -ECANCELED.
 * - Coroutines: every spawned coroutine is joined exactly once (a child
 *   whose parent was cancelled, and so cannot join, is joined by the
 *   driver), with MAY_DONE and its own result after running its whole code,
 *   or MAY_CANCELED only after a cancel (result NULL exactly when it never
 *   started); never MAY_PANICKED.  may_stats: nothing alive at the end, and
 *   `spawned` grew by exactly the spawns made.
 * - Nothing hangs: the root is joined within FZ_HANG_S seconds.
 */
#include "may.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_MAX_CH 4
#define FZ_MAX_ACTORS 48
#define FZ_SLOTS 6
#define FZ_MAX_DEPTH 4
#define FZ_MAX_OPS 400
#define FZ_MAX_IDS 4096
#define FZ_MAX_CASES 18
#define FZ_ESZ_MAX 64
#define FZ_DRIVER FZ_MAX_ACTORS /* receiver index of the final drain */
#define FZ_HANG_S 20
#define FZ_WORKERS 2
/* Spare threads stand in for blocked workers (may_worker_id() of a spare
 * is FZ_WORKERS or more): the runtime's bound on threads in all. */
#define FZ_MAX_THREADS 64

#define FZ_CHECK(cond)                                                          \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "fuzz_sched: %s:%d: invariant failed: %s\n", __FILE__, \
                    __LINE__, #cond);                                           \
            abort();                                                            \
        }                                                                       \
    } while (0)

typedef struct fz_chan {
    may_chan_t *ch;
    size_t esz, cap;
    atomic_bool close_started; /* set before a close is attempted */
    atomic_bool closed;        /* set after a close returned 0 */
    atomic_int closes_ok;
    atomic_long sig_sent, sig_recv; /* zero-size elements: counts only */
} fz_chan;

enum { MSG_FREE, MSG_SENDING, MSG_SENT, MSG_FAILED };

typedef struct fz_msg {
    _Atomic uint8_t state; /* MSG_*, by the sender */
    _Atomic uint8_t recvs; /* times received */
    uint8_t chan;          /* written before the send, read by the receiver */
    uint8_t sender;
} fz_msg;

typedef struct actor {
    int idx, depth;
    const uint8_t *code;
    size_t len;
    bool on_thread;   /* the root on the fuzzer's thread */
    int pinned;       /* the worker of a MAY_SPAWN_PINNED child, else -1 */
    may_co_t *co;     /* the handle: the parent's, or the driver's */
    bool joined;
    struct actor *child[FZ_SLOTS];
    atomic_bool started, finished;
    atomic_bool cancel_req;  /* set before anyone cancels it */
    atomic_bool saw_cancel;  /* some call returned -ECANCELED */
    atomic_bool self_cancel; /* it cancelled itself */
    uint64_t last[FZ_MAX_CH][FZ_MAX_ACTORS + 1]; /* last id received, per sender */
} actor;

static struct {
    int nch;
    fz_chan ch[FZ_MAX_CH];
    fz_msg msg[FZ_MAX_IDS];
    atomic_uint next_id;
    atomic_int ops;
    atomic_int nactors;
    actor actors[FZ_MAX_ACTORS + 1]; /* the last: the driver's drain */
    pthread_mutex_t orphan_lock;
    actor *orphan[FZ_MAX_ACTORS];
    int norphans;
    atomic_int spawns;
} g = { .orphan_lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- Messages ----------------------------------------------------------- */

static uint8_t pat(uint64_t id, size_t i)
{
    return (uint8_t)(id * 131 + i * 7 + (id >> 8));
}

/* A fresh message for channel c from sender a into buf: its id (0 for a
 * zero-size channel), or -1 when the ids ran out. */
static long msg_new(actor *a, int c, uint8_t *buf)
{
    fz_chan *ch = &g.ch[c];
    if (ch->esz == 0)
        return 0;
    unsigned id = atomic_fetch_add(&g.next_id, 1);
    if (id >= FZ_MAX_IDS)
        return -1;
    fz_msg *m = &g.msg[id];
    m->chan = (uint8_t)c;
    m->sender = (uint8_t)a->idx;
    atomic_store(&m->state, MSG_SENDING);
    uint64_t v = id;
    memcpy(buf, &v, sizeof v);
    for (size_t i = sizeof v; i < ch->esz; i++)
        buf[i] = pat(id, i);
    return id;
}

/* The send of message id (from msg_new) returned r. */
static void msg_sent(int c, long id, int r)
{
    if (g.ch[c].esz == 0) {
        if (r == 0)
            atomic_fetch_add(&g.ch[c].sig_sent, 1);
        return;
    }
    atomic_store(&g.msg[id].state, r == 0 ? MSG_SENT : MSG_FAILED);
}

/* Receiver a got buf from channel c. */
static void msg_got(actor *a, int c, const uint8_t *buf)
{
    fz_chan *ch = &g.ch[c];
    if (ch->esz == 0) {
        atomic_fetch_add(&ch->sig_recv, 1);
        return;
    }
    uint64_t id;
    memcpy(&id, buf, sizeof id);
    FZ_CHECK(id >= 1 && id < atomic_load(&g.next_id) && id < FZ_MAX_IDS); /* not invented */
    fz_msg *m = &g.msg[id];
    FZ_CHECK(m->chan == c); /* sent on this channel */
    for (size_t i = sizeof id; i < ch->esz; i++)
        FZ_CHECK(buf[i] == pat(id, i)); /* intact */
    FZ_CHECK(atomic_fetch_add(&m->recvs, 1) == 0); /* received once */
    FZ_CHECK(id > a->last[c][m->sender]); /* per-sender FIFO */
    a->last[c][m->sender] = id;
}

#define SENTINEL 0xa5

static void buf_clear(uint8_t *buf)
{
    memset(buf, SENTINEL, FZ_ESZ_MAX);
}

static bool buf_untouched(const uint8_t *buf)
{
    for (size_t i = 0; i < FZ_ESZ_MAX; i++)
        if (buf[i] != SENTINEL)
            return false;
    return true;
}

/* ---- Results ------------------------------------------------------------ */

static uint8_t next(const actor *a, size_t *pc)
{
    return *pc < a->len ? a->code[(*pc)++] : 0;
}

static int64_t deadline_of(uint8_t d)
{
    switch (d & 3) {
    case 0:
        return MAY_NOWAIT;
    case 1:
        return may_now() - 1 - (d >> 2);
    case 2:
        return may_deadline_in(((d >> 2) + 1) * 2000);
    default:
        return MAY_FOREVER;
    }
}

/* The checks every failed blocking call shares. */
static void check_err(actor *a, int r, int64_t deadline)
{
    if (r == -ETIMEDOUT) {
        FZ_CHECK(deadline != MAY_FOREVER);
        FZ_CHECK(may_now() >= deadline); /* not early */
    } else if (r == -ECANCELED) {
        FZ_CHECK(atomic_load(&a->cancel_req));
        atomic_store(&a->saw_cancel, true);
    }
}

static void check_cancelled(actor *a)
{
    if (may_cancelled())
        FZ_CHECK(atomic_load(&a->cancel_req));
}

static void check_place(actor *a)
{
    if (a->on_thread) {
        FZ_CHECK(may_self() == NULL && !may_in_coroutine() && may_worker_id() == -1);
        return;
    }
    int w = may_worker_id();
    FZ_CHECK(may_self() != NULL && may_in_coroutine() && w >= 0 && w < FZ_MAX_THREADS);
    if (a->pinned >= 0)
        FZ_CHECK(w == a->pinned);
}

/* ---- Coroutines --------------------------------------------------------- */

static void *actor_main(void *arg);

/* The join of child returned r with result res. */
static void check_join(actor *child, int r, void *res)
{
    FZ_CHECK(!child->joined);
    child->joined = true;
    FZ_CHECK(r == MAY_DONE || r == MAY_CANCELED);
    if (r == MAY_DONE) {
        FZ_CHECK(res == child && atomic_load(&child->finished));
        FZ_CHECK(!atomic_load(&child->saw_cancel)); /* it was cancelled: CANCELED */
    } else {
        FZ_CHECK(atomic_load(&child->cancel_req));
        if (res == NULL)
            FZ_CHECK(!atomic_load(&child->started));
        else
            FZ_CHECK(res == child && atomic_load(&child->finished));
    }
}

/* Join the child in slot s with deadline dl; false when it is not joined
 * yet (deadline, or a's own cancellation). */
static bool join_slot(actor *a, int s, int64_t dl)
{
    actor *c = a->child[s];
    void *res = (void *)1;
    int r = may_join(c->co, &res, dl);
    if (r == -ETIMEDOUT || r == -ECANCELED) {
        check_err(a, r, dl);
        return false;
    }
    check_join(c, r, res);
    a->child[s] = NULL;
    return true;
}

/* At a's end: join the children, or hand them to the driver when a was
 * cancelled (its joins fail). */
static void finish_children(actor *a)
{
    for (int s = 0; s < FZ_SLOTS; s++) {
        if (!a->child[s])
            continue;
        if (!join_slot(a, s, MAY_FOREVER)) {
            FZ_CHECK(atomic_load(&a->cancel_req));
            pthread_mutex_lock(&g.orphan_lock);
            g.orphan[g.norphans++] = a->child[s];
            pthread_mutex_unlock(&g.orphan_lock);
            a->child[s] = NULL;
        }
    }
}

static void op_spawn(actor *a, size_t *pc)
{
    uint8_t f = next(a, pc);
    size_t l = next(a, pc);
    if (l > a->len - *pc)
        l = a->len - *pc;
    const uint8_t *code = a->code + *pc;
    *pc += l;
    int s = 0;
    while (s < FZ_SLOTS && a->child[s])
        s++;
    if (s == FZ_SLOTS || a->depth >= FZ_MAX_DEPTH)
        return;
    int idx = atomic_fetch_add(&g.nactors, 1);
    if (idx >= FZ_MAX_ACTORS)
        return;
    actor *c = &g.actors[idx];
    c->idx = idx;
    c->depth = a->depth + 1;
    c->code = code;
    c->len = l;
    c->pinned = -1;
    may_spawn_opts_t o = { .worker = (f >> 2) & 1 };
    switch (f & 3) {
    case 1:
        o.name = "fuzz-actor-with-a-name-longer-than-31-bytes";
        break;
    case 2:
        o.flags = MAY_SPAWN_WORKER;
        break;
    case 3:
        o.flags = MAY_SPAWN_PINNED;
        c->pinned = o.worker;
        break;
    }
    int r = may_spawn(&c->co, actor_main, c, (f & 3) ? &o : NULL);
    FZ_CHECK(r == 0);
    /* the handle is valid until the join, ended or not */
    FZ_CHECK(may_co_id(c->co) > 0 && may_co_id(c->co) != may_co_id(may_self()));
    FZ_CHECK(strcmp(may_co_name(c->co), o.name ? "fuzz-actor-with-a-name-longer-t" : "") == 0);
    atomic_fetch_add(&g.spawns, 1);
    a->child[s] = c;
}

static void op_cancel(actor *a, int s)
{
    actor *c = a->child[s];
    if (!c)
        return;
    atomic_store(&c->cancel_req, true);
    FZ_CHECK(may_cancel(c->co) == 0);
}

static void op_sleep(actor *a, int us)
{
    bool cancelled = may_cancelled();
    int64_t t0 = may_now();
    int r = may_sleep(us * 1000);
    if (r == 0) {
        FZ_CHECK(!cancelled);
        FZ_CHECK(may_now() - t0 >= us * 1000);
    } else {
        FZ_CHECK(r == -ECANCELED);
        check_err(a, r, MAY_FOREVER);
    }
    if (atomic_load(&a->self_cancel))
        FZ_CHECK(r == -ECANCELED);
}

/* ---- Channels ----------------------------------------------------------- */

static void op_send(actor *a, int c, int64_t dl, bool try)
{
    uint8_t buf[FZ_ESZ_MAX];
    long id = msg_new(a, c, buf);
    if (id < 0)
        return;
    bool closed = atomic_load(&g.ch[c].closed);
    int r = try ? may_chan_trysend(g.ch[c].ch, buf) : may_chan_send(g.ch[c].ch, buf, dl);
    msg_sent(c, id, r);
    if (r == 0) {
        FZ_CHECK(!closed);
    } else if (r == -EPIPE) {
        FZ_CHECK(atomic_load(&g.ch[c].close_started));
    } else if (try) {
        FZ_CHECK(r == -EAGAIN);
    } else {
        FZ_CHECK(r == -ETIMEDOUT || r == -ECANCELED);
        check_err(a, r, dl);
    }
}

static void op_recv(actor *a, int c, int64_t dl, bool try)
{
    uint8_t buf[FZ_ESZ_MAX];
    buf_clear(buf);
    int r = try ? may_chan_tryrecv(g.ch[c].ch, buf) : may_chan_recv(g.ch[c].ch, buf, dl);
    if (r == 0) {
        msg_got(a, c, buf);
        return;
    }
    FZ_CHECK(buf_untouched(buf));
    if (r == -EPIPE) {
        FZ_CHECK(atomic_load(&g.ch[c].close_started));
    } else if (try) {
        FZ_CHECK(r == -EAGAIN);
    } else {
        FZ_CHECK(r == -ETIMEDOUT || r == -ECANCELED);
        check_err(a, r, dl);
    }
}

static void chan_close(int c)
{
    fz_chan *ch = &g.ch[c];
    atomic_store(&ch->close_started, true);
    int r = may_chan_close(ch->ch);
    if (r == 0) {
        FZ_CHECK(atomic_fetch_add(&ch->closes_ok, 1) == 0);
        atomic_store(&ch->closed, true);
    } else {
        FZ_CHECK(r == -EPIPE);
    }
    FZ_CHECK(may_chan_is_closed(ch->ch));
}

static void op_select(actor *a, size_t *pc)
{
    uint8_t nb = next(a, pc);
    int n = 1 + (nb & 3) + (nb & 0x80 ? 14 : 0);
    may_select_case_t cs[FZ_MAX_CASES];
    uint8_t buf[FZ_MAX_CASES][FZ_ESZ_MAX];
    long id[FZ_MAX_CASES];
    int chan[FZ_MAX_CASES];
    bool invalid = false, active = false;
    for (int i = 0; i < n; i++) {
        uint8_t k = next(a, pc);
        int c = (k >> 2) % g.nch;
        chan[i] = c;
        id[i] = -1;
        buf_clear(buf[i]);
        cs[i] = (may_select_case_t){ .op = k & 3, .chan = g.ch[c].ch, .elem = buf[i] };
        if ((k & 3) == 3) {
            if (k & 0x80) {
                invalid = true;
            } else {
                cs[i].op = MAY_SELECT_RECV;
                cs[i].chan = NULL;
            }
        } else if ((k & 3) == MAY_SELECT_SEND) {
            id[i] = msg_new(a, c, buf[i]);
            if (id[i] < 0)
                cs[i].op = MAY_SELECT_NONE;
        }
        if ((cs[i].op == MAY_SELECT_SEND || cs[i].op == MAY_SELECT_RECV) && cs[i].chan)
            active = true;
    }
    int64_t dl = deadline_of(next(a, pc));
    if (!active && dl == MAY_FOREVER)
        dl = MAY_NOWAIT; /* would wait forever */
    bool closed[FZ_MAX_CH];
    for (int c = 0; c < g.nch; c++)
        closed[c] = atomic_load(&g.ch[c].closed);
    int r = may_select(cs, (size_t)n, dl);
    if (invalid) {
        FZ_CHECK(r == -EINVAL);
    } else if (r < 0) {
        FZ_CHECK(r == -ETIMEDOUT || r == -ECANCELED);
        if (!active)
            FZ_CHECK(r == -ETIMEDOUT || atomic_load(&a->cancel_req));
        check_err(a, r, dl);
    } else {
        FZ_CHECK(r < n && cs[r].chan != NULL && cs[r].op != MAY_SELECT_NONE);
        int res = cs[r].result, c = chan[r];
        FZ_CHECK(res == 0 || res == -EPIPE);
        if (res == -EPIPE)
            FZ_CHECK(atomic_load(&g.ch[c].close_started));
        if (cs[r].op == MAY_SELECT_SEND && res == 0)
            FZ_CHECK(!closed[c]);
        if (cs[r].op == MAY_SELECT_RECV) {
            if (res == 0)
                msg_got(a, c, buf[r]);
            else
                FZ_CHECK(buf_untouched(buf[r]));
        }
    }
    for (int i = 0; i < n; i++) {
        if (cs[i].op == MAY_SELECT_SEND && cs[i].chan)
            msg_sent(chan[i], id[i], i == r ? cs[i].result : -1);
        else if (id[i] >= 0 && g.ch[chan[i]].esz)
            msg_sent(chan[i], id[i], -1); /* made, then not sent */
        if (cs[i].op == MAY_SELECT_RECV && i != r)
            FZ_CHECK(buf_untouched(buf[i])); /* only the chosen case happens */
    }
}

static void op_check(actor *a)
{
    for (int c = 0; c < g.nch; c++) {
        fz_chan *ch = &g.ch[c];
        FZ_CHECK(may_chan_cap(ch->ch) == ch->cap);
        size_t len = may_chan_len(ch->ch);
        if (ch->cap != MAY_CHAN_UNBOUNDED)
            FZ_CHECK(len <= ch->cap);
        if (atomic_load(&ch->closed))
            FZ_CHECK(may_chan_is_closed(ch->ch));
    }
    check_cancelled(a);
    check_place(a);
}

/* ---- An actor ----------------------------------------------------------- */

static void run(actor *a)
{
    size_t pc = 0;
    while (pc < a->len && atomic_fetch_add(&g.ops, 1) < FZ_MAX_OPS) {
        uint8_t op = a->code[pc++];
        switch (op & 15) {
        case 0:
            op_spawn(a, &pc);
            break;
        case 1: {
            int s = next(a, &pc) % FZ_SLOTS;
            int64_t dl = deadline_of(next(a, &pc));
            if (a->child[s])
                join_slot(a, s, dl);
            break;
        }
        case 2:
            op_cancel(a, next(a, &pc) % FZ_SLOTS);
            break;
        case 3:
            may_yield();
            check_place(a);
            break;
        case 4:
            op_sleep(a, next(a, &pc) & 63);
            check_place(a);
            break;
        case 5:
        case 6: {
            int c = next(a, &pc) % g.nch;
            op_send(a, c, deadline_of(next(a, &pc)), false);
            break;
        }
        case 7:
        case 8: {
            int c = next(a, &pc) % g.nch;
            op_recv(a, c, deadline_of(next(a, &pc)), false);
            break;
        }
        case 9: {
            uint8_t b = next(a, &pc);
            if (b & 1)
                op_send(a, (b >> 1) % g.nch, MAY_NOWAIT, true);
            else
                op_recv(a, (b >> 1) % g.nch, MAY_NOWAIT, true);
            break;
        }
        case 10:
            chan_close(next(a, &pc) % g.nch);
            break;
        case 11:
        case 12:
            op_select(a, &pc);
            break;
        case 13:
            op_check(a);
            break;
        case 14:
            if ((next(a, &pc) & 1) && !a->on_thread) {
                atomic_store(&a->cancel_req, true);
                atomic_store(&a->self_cancel, true);
                FZ_CHECK(may_cancel(may_self()) == 0);
                FZ_CHECK(may_cancelled());
            } else {
                may_yield();
            }
            break;
        default:
            for (int s = 0; s < FZ_SLOTS; s++)
                if (a->child[s])
                    join_slot(a, s, MAY_FOREVER);
            break;
        }
    }
}

static void *actor_main(void *arg)
{
    actor *a = arg;
    atomic_store(&a->started, true);
    check_place(a);
    run(a);
    finish_children(a);
    check_cancelled(a);
    atomic_store(&a->finished, true);
    return a;
}

/* Closes every channel at a moment, unless cancelled first. */
static void *closer_main(void *arg)
{
    if (may_sleep((int64_t)(intptr_t)arg) == 0)
        for (int c = 0; c < g.nch; c++)
            chan_close(c);
    return NULL;
}

/* ---- The driver --------------------------------------------------------- */

static bool verbose; /* $FUZZ_VERBOSE: a line per input on stderr */

static void fuzz_init(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    int r = may_configure(&(may_config_t){ .workers = FZ_WORKERS, .max_threads = FZ_MAX_THREADS });
    FZ_CHECK(r == 0 || r == -EBUSY);
    FZ_CHECK(may_start() == 0);
    FZ_CHECK(may_workers() == FZ_WORKERS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    return 0;
}

/* After the last replayed input (fuzz/replay_main.c): nothing is left. */
void fuzz_replay_done(void);
void fuzz_replay_done(void)
{
    FZ_CHECK(may_shutdown() == 0);
}

static const size_t caps[6] = { 0, 1, 2, 3, 8, MAY_CHAN_UNBOUNDED };
static const size_t eszs[4] = { 8, 24, 64, 0 };
static const int64_t closer_us[4] = { 200, 500, 1000, 2000 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    if (size < 1)
        return 0;
    uint8_t h = data[0];
    int nch = 1 + (h & 3);
    if (size < 1 + (size_t)nch)
        return 0;

    /* reset: the actors, the ledger, the channels */
    memset(g.actors, 0, sizeof g.actors);
    memset(g.msg, 0, sizeof g.msg);
    atomic_store(&g.next_id, 1);
    atomic_store(&g.ops, 0);
    atomic_store(&g.nactors, 1);
    atomic_store(&g.spawns, 0);
    g.norphans = 0;
    g.nch = nch;
    for (int c = 0; c < nch; c++) {
        fz_chan *ch = &g.ch[c];
        memset(ch, 0, sizeof *ch);
        ch->cap = caps[(data[1 + c] & 7) % 6];
        ch->esz = eszs[(data[1 + c] >> 3) & 3];
        FZ_CHECK(may_chan_new(&ch->ch, ch->esz, ch->cap) == 0);
    }
    may_stats_t st0, st;
    may_stats(&st0);
    FZ_CHECK(st0.alive == 0);

    actor *root = &g.actors[0];
    root->code = data + 1 + nch;
    root->len = size - 1 - (size_t)nch;
    root->on_thread = h & 4;
    root->pinned = -1;

    may_co_t *closer;
    FZ_CHECK(may_spawn(&closer, closer_main, (void *)(intptr_t)(closer_us[(h >> 3) & 3] * 1000),
                       NULL) == 0);
    if (root->on_thread) {
        actor_main(root);
    } else {
        FZ_CHECK(may_spawn(&root->co, actor_main, root, NULL) == 0);
        void *res;
        int r = may_join(root->co, &res, may_deadline_in((int64_t)FZ_HANG_S * 1000000000));
        if (r == -ETIMEDOUT) {
            fprintf(stderr, "fuzz_sched: the program did not end in %d s (%d ops)\n", FZ_HANG_S,
                    atomic_load(&g.ops));
            abort();
        }
        check_join(root, r, res);
    }

    /* the children of cancelled actors (and theirs); the closer stays, in
     * case they wait for it */
    int r, norphans = 0;
    for (;;) {
        pthread_mutex_lock(&g.orphan_lock);
        actor *o = g.norphans ? g.orphan[--g.norphans] : NULL;
        pthread_mutex_unlock(&g.orphan_lock);
        if (!o)
            break;
        norphans++;
        void *res;
        r = may_join(o->co, &res, may_deadline_in((int64_t)FZ_HANG_S * 1000000000));
        FZ_CHECK(r != -ETIMEDOUT);
        check_join(o, r, res);
    }
    FZ_CHECK(may_cancel(closer) == 0);
    r = may_join(closer, NULL, MAY_FOREVER);
    FZ_CHECK(r == MAY_DONE || r == MAY_CANCELED);
    int closer_r = r;
    int nact = atomic_load(&g.nactors);
    if (nact > FZ_MAX_ACTORS)
        nact = FZ_MAX_ACTORS;
    for (int i = root->on_thread ? 1 : 0; i < nact; i++)
        FZ_CHECK(g.actors[i].joined);

    /* close and drain: what is still buffered */
    actor *drain = &g.actors[FZ_DRIVER];
    uint8_t buf[FZ_ESZ_MAX];
    for (int c = 0; c < nch; c++) {
        chan_close(c);
        for (;;) {
            buf_clear(buf);
            r = may_chan_recv(g.ch[c].ch, buf, MAY_NOWAIT);
            if (r != 0)
                break;
            msg_got(drain, c, buf);
        }
        FZ_CHECK(r == -EPIPE && buf_untouched(buf));
        FZ_CHECK(may_chan_len(g.ch[c].ch) == 0);
        FZ_CHECK(atomic_load(&g.ch[c].closes_ok) == 1);
        FZ_CHECK(atomic_load(&g.ch[c].sig_sent) == atomic_load(&g.ch[c].sig_recv));
    }

    /* the ledger: sent once, received once; failed, never received */
    unsigned nid = atomic_load(&g.next_id);
    if (nid > FZ_MAX_IDS)
        nid = FZ_MAX_IDS;
    for (unsigned id = 1; id < nid; id++) {
        int s = atomic_load(&g.msg[id].state), n = atomic_load(&g.msg[id].recvs);
        FZ_CHECK(s == MSG_SENT || s == MSG_FAILED);
        FZ_CHECK(n == (s == MSG_SENT ? 1 : 0));
    }

    /* every coroutine ended, and the runtime counted each spawn */
    may_stats(&st);
    FZ_CHECK(st.alive == 0);
    uint64_t spawned = (uint64_t)atomic_load(&g.spawns) + 1 + !root->on_thread;
    FZ_CHECK(st.spawned - st0.spawned == spawned);

    if (verbose) {
        unsigned sent = 0;
        for (unsigned id = 1; id < nid; id++)
            sent += atomic_load(&g.msg[id].state) == MSG_SENT;
        fprintf(stderr, "fuzz_sched: %d ops, %d coroutines (%d orphaned), %u of %u messages "
                "delivered, closer %s\n", atomic_load(&g.ops) > FZ_MAX_OPS ? FZ_MAX_OPS :
                atomic_load(&g.ops), nact, norphans, sent, nid - 1,
                closer_r == MAY_DONE ? "fired" : "cancelled");
    }
    for (int c = 0; c < nch; c++)
        may_chan_free(g.ch[c].ch);
    return 0;
}
