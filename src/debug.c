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
 * lies inside that coroutine's stack and grows upwards (on Windows an
 * unwind-table walk with the same checks: backtrace_co), so a stack that
 * changes under the walk yields a wrong trace, never a bad read.  Running
 * coroutines get no backtrace (their registers live in another CPU).  These
 * readers are excluded from ASan/TSan instrumentation for that reason.
 *
 * Signal safety.  The handler formats into a fixed buffer with its own
 * number formatting and write(2), and takes the start and stack locks only
 * with trylock (the signal may have interrupted their holder).  It names
 * functions without dladdr(), which takes the dynamic loader's lock: a
 * signal that lands while a thread is inside dlopen() (whose constructors
 * run under that lock, and may wait for anything) would block the handler,
 * or, on the thread that holds the lock, let it read the list of loaded
 * objects mid-update.  Instead the handler finds the object with glibc's
 * _dl_find_object(), which is lock-free and async-signal-safe, and looks
 * the address up in that object's dynamic symbol table itself (what
 * dladdr() would read).  What remains is not formally async-signal-safe:
 * pthread_mutex_trylock, which in practice is an atomic exchange, and
 * reading the tables of an object another thread unloads at that moment,
 * which no coroutine that can still run has frames in.  Without
 * _dl_find_object (glibc before 2.35, other C libraries) the signal dump
 * prints addresses without names.  may_dump() itself, an ordinary call,
 * uses dladdr().
 */
#include "internal.h"

#ifndef _WIN32
#include <dlfcn.h>
#include <link.h>
#endif
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define NO_SAN __attribute__((no_sanitize("address", "thread", "undefined"), noinline))
#define BT_MAX 32

/* ---- a tiny formatter over a FILE * or a file descriptor ----------------- */

typedef struct sink {
    FILE *f;  /* or NULL: write(2) to fd, from the signal handler */
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

/* A signed count (a negative one is a bug worth seeing as such). */
static void sk_int(sink *s, int v)
{
    if (v < 0)
        sk_str(s, "-");
    sk_num(s, v < 0 ? (uint64_t)-(int64_t)v : (uint64_t)v, 10);
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

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define HAVE_DL_FIND_OBJECT 1

/* An address from an object's dynamic section: relocated in place by the
 * loader, except in objects whose dynamic section is read-only (the
 * vDSO), where it is still relative to the load address. */
static uintptr_t dyn_addr(const struct link_map *lm, uintptr_t v)
{
    return v < lm->l_addr ? v + lm->l_addr : v;
}

/* The number of entries of a dynamic symbol table, from its hash table:
 * DT_HASH states it; DT_GNU_HASH has it as one past the last symbol of the
 * longest-numbered bucket's chain. */
static size_t dyn_nsyms(const ElfW(Word) *hash, const uint32_t *gnu)
{
    if (hash)
        return hash[1];
    if (!gnu)
        return 0;
    uint32_t nbuckets = gnu[0], symoffset = gnu[1], bloom = gnu[2];
    const uint32_t *buckets = gnu + 4 + bloom * (sizeof(ElfW(Addr)) / 4);
    const uint32_t *chain = buckets + nbuckets;
    uint32_t last = 0;
    for (uint32_t i = 0; i < nbuckets; i++)
        if (buckets[i] > last)
            last = buckets[i];
    if (last < symoffset)
        return symoffset;
    while (!(chain[last - symoffset] & 1))
        last++;
    return (size_t)last + 1;
}

/* What dladdr() would say about pc, read without the loader's lock: the
 * object from _dl_find_object, then the exported function or object whose
 * extent holds pc (the highest such), from its dynamic symbol table. */
NO_SAN static int sym_lockfree(uintptr_t pc, Dl_info *di)
{
    struct dl_find_object fo;
    if (_dl_find_object((void *)pc, &fo) != 0 || !fo.dlfo_link_map)
        return 0;
    const struct link_map *lm = fo.dlfo_link_map;
    di->dli_fname = lm->l_name && lm->l_name[0] ? lm->l_name : program_invocation_name;
    di->dli_fbase = fo.dlfo_map_start;
    di->dli_sname = NULL;
    di->dli_saddr = NULL;
    const ElfW(Sym) *syms = NULL;
    const char *strs = NULL;
    const ElfW(Word) *hash = NULL;
    const uint32_t *gnu = NULL;
    size_t strsz = 0;
    for (const ElfW(Dyn) *d = lm->l_ld; d && d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: syms = (const ElfW(Sym) *)dyn_addr(lm, d->d_un.d_ptr); break;
        case DT_STRTAB: strs = (const char *)dyn_addr(lm, d->d_un.d_ptr); break;
        case DT_STRSZ: strsz = d->d_un.d_val; break;
        case DT_HASH: hash = (const ElfW(Word) *)dyn_addr(lm, d->d_un.d_ptr); break;
        case DT_GNU_HASH: gnu = (const uint32_t *)dyn_addr(lm, d->d_un.d_ptr); break;
        }
    }
    if (!syms || !strs)
        return 1;
    size_t n = dyn_nsyms(hash, gnu);
    const ElfW(Sym) *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const ElfW(Sym) *sym = &syms[i];
        int bind = ELF64_ST_BIND(sym->st_info), type = ELF64_ST_TYPE(sym->st_info);
        int vis = ELF64_ST_VISIBILITY(sym->st_other);
        if ((bind != STB_GLOBAL && bind != STB_WEAK) || type == STT_TLS ||
            (vis != STV_DEFAULT && vis != STV_PROTECTED) || sym->st_shndx == SHN_UNDEF ||
            sym->st_shndx == SHN_ABS || sym->st_name >= strsz)
            continue;
        uintptr_t a = lm->l_addr + sym->st_value;
        if (pc < a || (sym->st_size ? pc >= a + sym->st_size : pc != a))
            continue;
        if (!best || best->st_value < sym->st_value)
            best = sym;
    }
    if (best) {
        di->dli_sname = strs + best->st_name;
        di->dli_saddr = (void *)(lm->l_addr + best->st_value);
    }
    return 1;
}
#endif

/* "symbol+0xoff (module+0xoff)", as much as dladdr knows (in the signal
 * handler: as much as sym_lockfree finds in the same tables). */
#ifdef _WIN32
/* Windows: "(module+0xoff)", from the loader (no symbol tables here). */
static void sk_sym(sink *s, uintptr_t pc)
{
    sk_num(s, pc, 16);
    HMODULE m;
    char name[MAX_PATH];
    if (!s->f || !GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                                          GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                                      (LPCSTR)pc, &m) ||
        !GetModuleFileNameA(m, name, sizeof name))
        return;
    sk_str(s, " (");
    sk_str(s, name);
    sk_str(s, "+");
    sk_num(s, pc - (uintptr_t)m, 16);
    sk_str(s, ")");
}
#else
static void sk_sym(sink *s, uintptr_t pc)
{
    sk_num(s, pc, 16);
    Dl_info di;
    if (!s->f) {
#ifdef HAVE_DL_FIND_OBJECT
        if (!sym_lockfree(pc, &di))
            return;
#else
        return;
#endif
    } else if (!dladdr((void *)pc, &di) || !di.dli_fname) {
        return;
    }
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
#endif

/* ---- one coroutine -------------------------------------------------------- */

typedef struct dump_ctx {
    sink *s;
    unsigned long count;
} dump_ctx;

/* Worker running co, or -1. */
NO_SAN static int running_on(const struct may_co *co)
{
    int n = atomic_load_explicit(&may__S.nall, memory_order_acquire);
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

/* One line of a backtrace: "    #i  pc (where)". */
static void bt_frame(sink *s, int i, uintptr_t pc)
{
    sk_str(s, "    #");
    sk_num(s, (uint64_t)i, 10);
    sk_str(s, i < 10 ? "  " : " ");
    sk_sym(s, pc);
    sk_str(s, "\n");
}

#ifdef _WIN32
/* Windows: MinGW's Win64 prologues point rbp into the middle of the frame
 * (rbp = rsp + N), so rbp is no chain of frame records; the walk follows
 * the PE unwind tables instead (RtlLookupFunctionEntry, RtlVirtualUnwind),
 * from the context the inline switch left: rip = its resume address, rsp =
 * the enclosing function's (saved sp + MAY__FRAME_SIZE), rbp as saved.  The
 * other nonvolatile registers the switch declared clobbered were saved by
 * the enclosing function's prologue, with unwind codes, so unwinding
 * restores them.  The stack may change under the walk (the coroutine can
 * be resumed meanwhile), so before each step the memory the unwinder will
 * read is bounded from the function's unwind codes (win_unwind_reach) and
 * must lie inside [sp, top), top being the control block (the TIB's
 * StackBase); rsp must grow at every step.  The walk ends at rip 0 (the
 * zero above may__win_ctx_boot's frame, frame_win64.h), outside the stack,
 * or after BT_MAX frames. */

/* The bytes above the frame base that RtlVirtualUnwind may read to unwind
 * the function of entry fn: pushes, allocations and save slots, and the
 * return address; the part after the frame-pointer code separately, since
 * the unwinder restarts from rbp - 16 * offset there.  0: not bounded (a
 * machine frame, an unknown code, a chain too long). */
static size_t win_max(size_t a, size_t b)
{
    return a > b ? a : b;
}

static int win_unwind_reach(uintptr_t image, const RUNTIME_FUNCTION *fn, size_t *all,
                            size_t *after_fp, int *fp_reg, unsigned *fp_off)
{
    size_t sum = 0, sum_fp = 0, save_end = 0;
    int seen_fp = 0;
    *fp_reg = 0;
    *fp_off = 0;
    for (int depth = 0; depth < 8; depth++) {
        const uint8_t *ui = (const uint8_t *)(image + fn->UnwindData);
        unsigned flags = ui[0] >> 3, count = ui[2];
        const uint16_t *code = (const uint16_t *)(ui + 4);
        for (unsigned k = 0; k < count; k++) {
            unsigned op = (code[k] >> 8) & 15, info = code[k] >> 12;
            size_t add = 0;
            switch (op) {
            case 0: /* UWOP_PUSH_NONVOL */
                add = 8;
                break;
            case 1: /* UWOP_ALLOC_LARGE */
                if (info == 0) {
                    add = (size_t)code[k + 1] * 8;
                    k += 1;
                } else {
                    add = code[k + 1] | (size_t)code[k + 2] << 16;
                    k += 2;
                }
                break;
            case 2: /* UWOP_ALLOC_SMALL */
                add = info * 8 + 8;
                break;
            case 3: /* UWOP_SET_FPREG */
                seen_fp = 1;
                *fp_reg = ui[3] & 15;
                *fp_off = (ui[3] >> 4) * 16u;
                break;
            case 4: /* UWOP_SAVE_NONVOL */
                save_end = win_max(save_end, (size_t)code[k + 1] * 8 + 8);
                k += 1;
                break;
            case 5: /* UWOP_SAVE_NONVOL_FAR */
                save_end = win_max(save_end, (code[k + 1] | (size_t)code[k + 2] << 16) + 8);
                k += 2;
                break;
            case 8: /* UWOP_SAVE_XMM128 */
                save_end = win_max(save_end, (size_t)code[k + 1] * 16 + 16);
                k += 1;
                break;
            case 9: /* UWOP_SAVE_XMM128_FAR */
                save_end = win_max(save_end, (code[k + 1] | (size_t)code[k + 2] << 16) + 16);
                k += 2;
                break;
            default: /* UWOP_PUSH_MACHFRAME (the stack pointer read from the
                      * frame), or a code of a later version */
                return 0;
            }
            sum += add;
            if (seen_fp)
                sum_fp += add;
        }
        if (!(flags & UNW_FLAG_CHAININFO))
            break;
        if (depth == 7)
            return 0;
        fn = (const RUNTIME_FUNCTION *)(code + ((count + 1) & ~1u));
    }
    /* the return address sits above the pushes and allocations; a save
     * slot lies within them, but bound it anyway */
    *all = win_max(sum, save_end) + 8;
    *after_fp = win_max(sum_fp, save_end) + 8;
    return 1;
}

/* The value of general register n (the unwind codes' numbering) in c. */
static uintptr_t win_reg(const CONTEXT *c, int n)
{
    const DWORD64 *r = &c->Rax; /* Rax .. R15 are consecutive, in that order */
    return (uintptr_t)r[n];
}

NO_SAN static void backtrace_co(sink *s, const struct may_co *co)
{
    const char *sp = *(const char *const volatile *)&co->ctx.sp;
    uintptr_t pc, fp;
    if (saved_regs(co, sp, &pc, &fp) < 0)
        return;
    uintptr_t lo = (uintptr_t)sp, hi = (uintptr_t)co;
    CONTEXT c;
    memset(&c, 0, sizeof c);
    c.ContextFlags = CONTEXT_FULL;
    c.Rip = pc;
    c.Rsp = (uintptr_t)sp + MAY__FRAME_SIZE;
    c.Rbp = fp;
    for (int i = 0; i < BT_MAX && c.Rip; i++) {
        bt_frame(s, i, (uintptr_t)c.Rip);
        uintptr_t rsp = (uintptr_t)c.Rsp;
        if (rsp < lo || rsp >= hi || (rsp & 7))
            break;
        DWORD64 image = 0;
        PRUNTIME_FUNCTION fn = RtlLookupFunctionEntry(c.Rip, &image, NULL);
        if (!fn) { /* a leaf: the return address at rsp */
            if (rsp + 8 > hi)
                break;
            c.Rip = *(const uintptr_t *)rsp;
            c.Rsp = rsp + 8;
        } else {
            size_t all, after_fp;
            int reg;
            unsigned off;
            if (!win_unwind_reach((uintptr_t)image, fn, &all, &after_fp, &reg, &off) ||
                all > hi - rsp)
                break;
            if (reg) {
                uintptr_t base = win_reg(&c, reg) - off;
                if (base < rsp || base >= hi || after_fp > hi - base)
                    break;
            }
            PVOID data;
            DWORD64 frame;
            RtlVirtualUnwind(UNW_FLAG_NHANDLER, image, c.Rip, fn, &c, &data, &frame, NULL);
        }
        if ((uintptr_t)c.Rsp <= rsp || (uintptr_t)c.Rsp > hi)
            break;
    }
}
#else
NO_SAN static void backtrace_co(sink *s, const struct may_co *co)
{
    const char *sp = *(const char *const volatile *)&co->ctx.sp;
    uintptr_t pc, fp;
    if (saved_regs(co, sp, &pc, &fp) < 0)
        return;
    uintptr_t lo = (uintptr_t)sp, hi = (uintptr_t)co;
    for (int i = 0; i < BT_MAX && pc; i++) {
        bt_frame(s, i, pc);
        /* a frame record is [previous fp, return address] on both ABIs */
        if (fp < lo || fp > hi - 16 || (fp & 7))
            break;
        const uintptr_t *rec = (const uintptr_t *)fp;
        pc = rec[1];
        lo = fp + 16;
        fp = rec[0];
    }
}
#endif

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
    sk_num(s, (uint64_t)may__stack_size(&co->stack), 10);
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
    int n = atomic_load_explicit(&may__S.nall, memory_order_acquire);
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
        /* the role first when it is not the usual one (src/handoff.c) */
        static const char *const role_name[] = { "", "lent, ", "spare, ", "dead, " };
        int role = atomic_load_explicit(&w->role, memory_order_relaxed);
        if (role > 0 && role < 4)
            sk_str(s, role_name[role]);
        if (cur) {
            sk_str(s, "running coroutine ");
            sk_num(s, cur->id, 10);
        } else if (atomic_load_explicit(&w->sleep_word, memory_order_relaxed)) {
            sk_str(s, atomic_load_explicit(&w->polling, memory_order_relaxed) ? "idle (in poller)"
                                                                               : "idle");
        } else {
            sk_str(s, role == MAY__ROLE_DEAD ? "thread ended" : "scheduling");
        }
        /* the owner's plain fields, read racily (NO_SAN) */
        if (((volatile may__worker *)w)->idle)
            sk_str(s, ", on the idle list");
        if (((volatile may__worker *)w)->spinning)
            sk_str(s, ", spinning");
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
    /* the scheduler's counts: a lost wake-up shows here (src/sched.c) */
    sk_str(s, "active ");
    sk_int(s, atomic_load_explicit(&may__S.nactive, memory_order_relaxed));
    sk_str(s, ", idle ");
    sk_int(s, atomic_load_explicit(&may__S.nidle, memory_order_relaxed));
    sk_str(s, ", spinning ");
    sk_int(s, atomic_load_explicit(&may__S.nspinning, memory_order_relaxed));
    sk_str(s, ", threads made ");
    sk_int(s, atomic_load_explicit(&may__S.nall, memory_order_relaxed));
    sk_str(s, "\n");
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
    may__lock(&may__S.start_lock, MAY__RANK_START);
    long r = dump_to(&s, 0);
    may__unlock(&may__S.start_lock, MAY__RANK_START);
    fflush(out);
    return r;
}

#ifdef _WIN32
int may_dump_on_signal(int sig)
{
    (void)sig;
    return -ENOTSUP; /* no signals (docs/WINDOWS.md) */
}
#else
static _Atomic int dump_sig;

static void dump_handler(int sig)
{
    (void)sig;
    int saved = errno;
    sink s = { .fd = 2 };
    if (may__trylock(&may__S.start_lock, MAY__RANK_START) == 0) {
        dump_to(&s, 1);
        may__unlock(&may__S.start_lock, MAY__RANK_START);
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
#endif
