/*
 * debug.c - seeing the coroutines: may_dump() and the dump-on-signal
 * handler, in the spirit of Go's SIGQUIT traceback.
 *
 * Finding every coroutine.  The scheduler keeps no list of live coroutines:
 * linking and unlinking one at every spawn and end would cost two contended
 * cache lines on the hottest path.  Instead the stack allocator keeps a
 * registry of the mappings that hold stacks (may__regions, a handful of
 * dense slabs plus one entry per guarded stack), each stack's control block
 * sits at a fixed place at its top, and a control block carries a magic
 * word from spawn until its memory is released.  Walking the registry under
 * the stack lock therefore finds every coroutine at no cost to the hot path,
 * and the memory it reads cannot be unmapped meanwhile.  The gdb extension
 * (gdb/may-gdb.py) walks the same structures from outside the process.
 *
 * What is racy, and why that is acceptable.  The dump does not stop the
 * world: a coroutine may be resumed on another worker while we read it.  So
 * fields are read once, the state is a snapshot, and the backtrace of a
 * parked coroutine is a frame-pointer walk that checks every frame pointer
 * lies inside that coroutine's stack and grows upwards, so a stack that
 * changes under the walk yields a wrong trace, never a bad read.  Running
 * coroutines get no backtrace (their registers live in another CPU).  These
 * readers are excluded from ASan/TSan instrumentation for that reason.
 *
 * Signal safety.  The handler formats into a fixed buffer with its own
 * number formatting and write(2), takes the stack lock only with trylock
 * (the signal may have interrupted its holder), and calls dladdr() for
 * symbol names, which is not formally async-signal-safe but does not
 * allocate once the dynamic linker is initialised; this is a debugging aid
 * that must not make a hung process worse, and it never takes a lock the
 * interrupted code could hold except through trylock.
 */
#include "internal.h"

#include <dlfcn.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define NO_SAN __attribute__((no_sanitize("address", "thread", "undefined"), noinline))
#define BT_MAX 32

/* ---- a tiny formatter over a FILE * or a file descriptor ----------------- */

typedef struct sink {
    FILE *f;  /* or NULL: write(2) to fd */
    int fd;
    size_t n;
    char buf[512];
} sink;

static void sk_flush(sink *s)
{
    if (!s->n)
        return;
    if (s->f) {
        fwrite(s->buf, 1, s->n, s->f);
    } else {
        size_t off = 0;
        while (off < s->n) {
            ssize_t w = write(s->fd, s->buf + off, s->n - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
    }
    s->n = 0;
}

static void sk_mem(sink *s, const char *p, size_t len)
{
    while (len) {
        if (s->n == sizeof s->buf)
            sk_flush(s);
        size_t k = sizeof s->buf - s->n;
        if (k > len)
            k = len;
        memcpy(s->buf + s->n, p, k);
        s->n += k;
        p += k;
        len -= k;
    }
}

static void sk_str(sink *s, const char *p)
{
    sk_mem(s, p, strlen(p));
}

static void sk_num(sink *s, uint64_t v, int base)
{
    char tmp[24];
    int i = sizeof tmp;
    do {
        tmp[--i] = "0123456789abcdef"[v % (unsigned)base];
        v /= (unsigned)base;
    } while (v);
    if (base == 16)
        sk_str(s, "0x");
    sk_mem(s, tmp + i, sizeof tmp - (size_t)i);
}

/* A printable copy of a name that may be changing under us. */
static void sk_name(sink *s, const char *name, size_t cap)
{
    sk_str(s, "\"");
    for (size_t i = 0; i < cap && name[i]; i++) {
        char c = name[i];
        sk_mem(s, (c >= 32 && c < 127 && c != '"') ? &c : "?", 1);
    }
    sk_str(s, "\"");
}

/* "symbol+0xoff (module+0xoff)", as much as dladdr knows. */
static void sk_sym(sink *s, uintptr_t pc)
{
    sk_num(s, pc, 16);
    Dl_info di;
    if (!dladdr((void *)pc, &di) || !di.dli_fname)
        return;
    if (di.dli_sname && di.dli_saddr) {
        sk_str(s, " ");
        sk_str(s, di.dli_sname);
        sk_str(s, "+");
        sk_num(s, pc - (uintptr_t)di.dli_saddr, 16);
    }
    sk_str(s, " (");
    sk_str(s, di.dli_fname);
    sk_str(s, "+");
    sk_num(s, pc - (uintptr_t)di.dli_fbase, 16);
    sk_str(s, ")");
}

/* ---- one coroutine -------------------------------------------------------- */

typedef struct dump_ctx {
    sink *s;
    unsigned long count;
} dump_ctx;

/* Worker running co, or -1. */
NO_SAN static int running_on(const struct may_co *co)
{
    int n = may__S.nworkers;
    may__worker **ws = may__S.workers;
    for (int i = 0; ws && i < n; i++)
        if (ws[i] && ((volatile may__worker *)ws[i])->cur == co)
            return i;
    return -1;
}

/* The layout of a switched-out context (src/arch/<arch>/frame.h), for the
 * gdb extension: it reads this table from the program, so that the offsets
 * exist in one place only.  Never read by the library itself. */
MAY_HIDDEN __attribute__((used)) const struct may__frame_layout {
    uint32_t size;   /* saved sp + size = the stack pointer when it resumes */
    uint32_t pc;     /* byte offset of the resume address from the saved sp */
    uint32_t fp;     /* byte offset of the saved frame pointer */
    char fp_reg[8];  /* the frame pointer's name in gdb */
} may__frame_layout = { MAY__FRAME_SIZE, MAY__FRAME_PC, MAY__FRAME_FP, MAY__FRAME_FP_REG };

/* The saved pc and frame pointer of a switched-out context, if its saved
 * frame lies inside its stack. */
NO_SAN static int saved_regs(const struct may_co *co, const char *sp, uintptr_t *pc, uintptr_t *fp)
{
    const char *lo = co->stack.lo, *hi = (const char *)co;
    if (sp < lo || sp > hi - MAY__FRAME_SIZE)
        return -1;
    *pc = *(const uintptr_t *)(sp + MAY__FRAME_PC);
    *fp = *(const uintptr_t *)(sp + MAY__FRAME_FP);
    return 0;
}

NO_SAN static void backtrace_co(sink *s, const struct may_co *co)
{
    const char *sp = *(const char *const volatile *)&co->ctx.sp;
    uintptr_t pc, fp;
    if (saved_regs(co, sp, &pc, &fp) < 0)
        return;
    uintptr_t lo = (uintptr_t)sp, hi = (uintptr_t)co;
    for (int i = 0; i < BT_MAX && pc; i++) {
        sk_str(s, "    #");
        sk_num(s, (uint64_t)i, 10);
        sk_str(s, i < 10 ? "  " : " ");
        sk_sym(s, pc);
        sk_str(s, "\n");
        /* a frame record is [previous fp, return address] on both ABIs */
        if (fp < lo || fp > hi - 16 || (fp & 7))
            break;
        const uintptr_t *rec = (const uintptr_t *)fp;
        pc = rec[1];
        lo = fp + 16;
        fp = rec[0];
    }
}

NO_SAN static int dump_one(struct may_co *co, void *arg)
{
    dump_ctx *d = arg;
    sink *s = d->s;
    d->count++;
    uint32_t word = atomic_load_explicit(&co->parker.word, memory_order_relaxed);
    int js = atomic_load_explicit(&co->join_state, memory_order_relaxed);
    int on = running_on(co);
    const char *what = *(const char *const volatile *)&co->wait_what;
    const void *obj = *(const void *const volatile *)&co->wait_obj;
    sk_str(s, "coroutine ");
    sk_num(s, co->id, 10);
    sk_str(s, " ");
    sk_name(s, co->name, sizeof co->name);
    sk_str(s, " [");
    int parked = 0;
    if (js == MAY__JS_DONE) {
        sk_str(s, "ended, not joined");
    } else if (on >= 0) {
        sk_str(s, "running on worker ");
        sk_num(s, (uint64_t)on, 10);
    } else if (word & MAY__P_PARKED) {
        parked = 1;
        sk_str(s, "parked: ");
        sk_str(s, what ? what : "?");
        if (what && !strncmp(what, "fd", 2)) {
            sk_str(s, " ");
            sk_num(s, (uint64_t)(intptr_t)obj, 10);
        } else if (obj) {
            sk_str(s, " ");
            sk_num(s, (uintptr_t)obj, 16);
        }
        if (co->park_mask & MAY__P_TIMEOUT)
            sk_str(s, ", with deadline");
    } else if (!co->started) {
        sk_str(s, "runnable, not started");
    } else {
        sk_str(s, "runnable");
    }
    if (atomic_load_explicit(&co->cancelled, memory_order_relaxed))
        sk_str(s, ", cancelled");
    if (co->pinned >= 0) {
        sk_str(s, ", pinned to worker ");
        sk_num(s, (uint64_t)co->pinned, 10);
    }
    if (js == MAY__JS_DETACHED)
        sk_str(s, ", detached");
    sk_str(s, "] stack ");
    sk_num(s, (uint64_t)co->stack.size, 10);
    sk_str(s, "\n    entry ");
    sk_sym(s, (uintptr_t)co->fn);
    sk_str(s, "\n");
    if (parked || (on < 0 && co->started && js != MAY__JS_DONE))
        backtrace_co(s, co);
    return 0;
}

/* ---- the dump ------------------------------------------------------------- */

/* Runs under the stack lock (see may_stats). */
NO_SAN static void dump_workers(void *arg)
{
    sink *s = ((dump_ctx *)arg)->s;
    int n = may__S.nworkers;
    may__worker **ws = may__S.workers;
    for (int i = 0; ws && i < n; i++) {
        may__worker *w = ws[i];
        if (!w)
            continue;
        struct may_co *cur = ((volatile may__worker *)w)->cur;
        uint32_t h = atomic_load_explicit(&w->q.head, memory_order_relaxed);
        uint32_t t = atomic_load_explicit(&w->q.tail, memory_order_relaxed);
        sk_str(s, "worker ");
        sk_num(s, (uint64_t)i, 10);
        sk_str(s, ": ");
        if (cur) {
            sk_str(s, "running coroutine ");
            sk_num(s, cur->id, 10);
        } else if (atomic_load_explicit(&w->sleep_word, memory_order_relaxed)) {
            sk_str(s, atomic_load_explicit(&w->polling, memory_order_relaxed) ? "idle (in poller)"
                                                                               : "idle");
        } else {
            sk_str(s, "scheduling");
        }
        sk_str(s, ", run queue ");
        sk_num(s, (uint64_t)(uint32_t)(t - h), 10);
        sk_str(s, ", inbox ");
        sk_num(s, atomic_load_explicit(&w->inbox_len, memory_order_relaxed), 10);
        sk_str(s, ", switches ");
        sk_num(s, atomic_load_explicit(&w->n_switch, memory_order_relaxed), 10);
        sk_str(s, ", steals ");
        sk_num(s, atomic_load_explicit(&w->n_steal, memory_order_relaxed), 10);
        sk_str(s, "\n");
    }
}

static long dump_to(sink *s, int from_signal)
{
    sk_str(s, "may: coroutine dump (");
    sk_str(s, from_signal ? "signal" : "may_dump");
    sk_str(s, "), ");
    int state = atomic_load_explicit(&may__S.state, memory_order_acquire);
    if (state != 2) {
        sk_str(s, "runtime not running\n");
        sk_flush(s);
        return 0;
    }
    sk_num(s, (uint64_t)may__S.nworkers, 10);
    sk_str(s, " workers, ");
    sk_num(s, atomic_load_explicit(&may__S.gq_len, memory_order_relaxed), 10);
    sk_str(s, " in the global queue\n");
    dump_ctx d = { .s = s };
    int r = may__stacks_foreach(dump_workers, dump_one, &d, from_signal);
    if (r < 0) {
        sk_str(s, "(the stack registry is busy: coroutines not listed)\n");
        sk_flush(s);
        return r;
    }
    sk_str(s, "may: ");
    sk_num(s, d.count, 10);
    sk_str(s, " coroutines\n");
    sk_flush(s);
    return (long)d.count;
}

long may_dump(FILE *out)
{
    if (!out)
        return -EINVAL;
    sink s = { .f = out };
    /* start_lock keeps the workers from being freed while we read them */
    pthread_mutex_lock(&may__S.start_lock);
    long r = dump_to(&s, 0);
    pthread_mutex_unlock(&may__S.start_lock);
    fflush(out);
    return r;
}

static _Atomic int dump_sig;

static void dump_handler(int sig)
{
    (void)sig;
    int saved = errno;
    sink s = { .fd = 2 };
    if (pthread_mutex_trylock(&may__S.start_lock) == 0) {
        dump_to(&s, 1);
        pthread_mutex_unlock(&may__S.start_lock);
    } else {
        sk_str(&s, "may: coroutine dump skipped: the runtime is starting or stopping\n");
        sk_flush(&s);
    }
    errno = saved;
}

int may_dump_on_signal(int sig)
{
    if (sig < 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV ||
        sig == SIGBUS)
        return -EINVAL;
    int old = atomic_exchange(&dump_sig, sig);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    if (old > 0 && old != sig) {
        sa.sa_handler = SIG_DFL;
        sigaction(old, &sa, NULL);
    }
    if (sig == 0)
        return 0;
    sa.sa_handler = dump_handler;
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    if (sigaction(sig, &sa, NULL) != 0)
        return -errno;
    return 0;
}
