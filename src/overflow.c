/*
 * overflow.c - reporting a coroutine's stack overflow: the SIGSEGV/SIGBUS
 * handler, the alternate signal stacks it runs on, and the report.
 *
 * Why.  A coroutine's stack has a fixed size (src/stack.c), and running off
 * its end is the one memory error a coroutine runtime adds to C.  Left to
 * the default action, it kills the process with a bare "Segmentation
 * fault" that names neither the coroutine nor the cause.  So the runtime
 * installs a handler that recognises an overflow and prints one line (the
 * coroutine's id and name, or the generator and who ran it, the stack size
 * and the fault address), then lets the fault kill the process as before.
 *
 * Which faults are overflows.  A fault at an address in [fence, lo) of the
 * stack running now: the guard page and 64 KiB below it for a guarded stack
 * (a big frame can jump over one page), the whole slab below it for a dense
 * stack (a deep overflow writes through the stacks below into the slab's
 * PROT_NONE page).  The stack running now is the innermost generator's if
 * the thread is inside one (src/gen.c), else its coroutine's.  Any other
 * fault goes to the handler that was installed before ours, or to the
 * default action.  After a report the handler restores the default actions
 * and returns: the faulting instruction runs again and the process dies of
 * that signal, at that instruction.  A shallow overflow of a dense
 * stack, into its soft guard and no further, faults nowhere; the allocator
 * finds it when it hands that stack out again (check_reused in stack.c) and
 * reports it here (may__overflow_report_reused).
 *
 * The alternate signal stack.  An overflowing coroutine has no stack left
 * for the handler, so the handler runs on an alternate signal stack
 * (SA_ONSTACK) of 64 KiB: each worker maps its own when it starts and frees
 * it when it stops; a plain thread that makes a generator maps one too,
 * and a thread-specific key's destructor unmaps it when that thread exits.
 *
 * Invariants.  The handler is async-signal-safe: it takes no lock, calls no
 * malloc or stdio, builds its message by hand and writes it with write(2).
 * It reads only the faulting thread's own coroutine and generator, which
 * cannot change under it.  The handler is installed once per process and
 * stays (a second runtime start finds it installed).
 *
 * Lock order: none; nothing here takes a lock of the runtime.
 *
 * Memory ordering: segv_installed is claimed by a seq_cst CAS, so one
 * caller installs the handler; sigaction itself is process-wide.
 * altstack_mem is a thread-local.  alt_key and alt_key_ok are written once
 * under pthread_once, which orders them before every later reader.
 */
#include "internal.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static struct sigaction old_segv, old_bus;
static _Atomic int segv_installed;
static __thread void *altstack_mem;

static void put_str(char *buf, size_t *n, size_t cap, const char *s)
{
    while (*s && *n + 1 < cap)
        buf[(*n)++] = *s++;
}

static void put_num(char *buf, size_t *n, size_t cap, uint64_t v, int base)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = "0123456789abcdef"[v % (unsigned)base];
        v /= (unsigned)base;
    } while (v);
    if (base == 16)
        put_str(buf, n, cap, "0x");
    while (i && *n + 1 < cap)
        buf[(*n)++] = tmp[--i];
}

/* Async-signal-safe: build the message by hand and write(2) it.  The stack
 * st that overflowed is generator gen's (run by coroutine co, or by a plain
 * thread when co is NULL), or, gen NULL, coroutine co's own. */
static void report_overflow_of(const void *gen, const struct may_co *co, const may__stack *st,
                               const void *addr, const char *how)
{
    char buf[320];
    size_t n = 0;
    put_str(buf, &n, sizeof buf, "may: stack overflow in ");
    if (gen) {
        put_str(buf, &n, sizeof buf, "generator ");
        put_num(buf, &n, sizeof buf, (uintptr_t)gen, 16);
        put_str(buf, &n, sizeof buf, co ? " run by " : " run by a plain thread");
        /* A dense generator stack may sit right above its coroutine's in a
         * slab: an overflow that ran down to addr went through that
         * coroutine's control block, whose name and id are garbage now. */
        if (co && addr && (const char *)co + sizeof *co > (const char *)addr &&
            (const char *)co < st->lo) {
            put_str(buf, &n, sizeof buf, "a coroutine (its control block was overwritten too)");
            co = NULL;
        }
    }
    if (co) {
        put_str(buf, &n, sizeof buf, "coroutine ");
        put_num(buf, &n, sizeof buf, co->id, 10);
        put_str(buf, &n, sizeof buf, " \"");
        put_str(buf, &n, sizeof buf, co->name);
        put_str(buf, &n, sizeof buf, "\"");
    }
    put_str(buf, &n, sizeof buf, " (stack size ");
    put_num(buf, &n, sizeof buf, st->size, 10);
    put_str(buf, &n, sizeof buf, " bytes");
    if (addr) {
        put_str(buf, &n, sizeof buf, ", fault at ");
        put_num(buf, &n, sizeof buf, (uintptr_t)addr, 16);
    }
    put_str(buf, &n, sizeof buf, "; ");
    put_str(buf, &n, sizeof buf, how);
    put_str(buf, &n, sizeof buf, ")\n");
    ssize_t r = write(2, buf, n);
    (void)r;
}

static void report_overflow(const struct may_co *co, const void *addr, const char *how)
{
    report_overflow_of(NULL, co, &co->stack, addr, how);
}

/* A shallow overflow found by the allocator when it hands a dense stack out
 * again or at shutdown (check_reused in src/stack.c): name the stack's last
 * owner, whose control block is still at the top of the slot, and abort. */
MAY_NOINLINE void may__overflow_report_reused(const may__stack *st)
{
    const struct may_co *co = may__stack_co(st->base, st->size);
    if (co->stack.base == st->base) {
        report_overflow(co, NULL, "its soft guard page was found written");
    } else {
        static const char msg[] = "may: stack overflow in a generator: its soft guard page "
                                  "was found written\n";
        ssize_t r = write(2, msg, sizeof msg - 1);
        (void)r;
    }
    signal(SIGABRT, SIG_DFL);
    abort();
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
    may_co_t *co = may__cur_co();
    struct may_gen *g = may__gen_running(); /* the innermost, run by co or this thread */
    const may__stack *st = g ? may__gen_stack(g) : co ? &co->stack : NULL;
    char *a = si->si_addr;
    /* Below the usable stack, down to the fence: the guard page (and 64 KiB
     * under it), or for a dense stack anywhere down its slab.  The stack
     * running now is the innermost generator's, if any; only it can
     * overflow. */
    if (st && a >= st->fence && a < st->lo) {
        report_overflow_of(g, co, st, a, st->guarded ? "hit the guard page" : "hit the soft guard");
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        return; /* the fault repeats and kills the process */
    }
    struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
    if (old->sa_flags & SA_SIGINFO) {
        if (old->sa_sigaction) {
            old->sa_sigaction(sig, si, uctx);
            return;
        }
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);
}

void may__stack_segv_install(void)
{
    int expect = 0;
    if (!atomic_compare_exchange_strong(&segv_installed, &expect, 1))
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

/* A plain thread that makes a generator gets an alternate signal stack
 * too; the key's destructor unmaps it when that thread exits (workers free
 * theirs themselves, and clear the key first). */
static pthread_key_t alt_key;
static int alt_key_ok;
static pthread_once_t alt_once = PTHREAD_ONCE_INIT;

/* alt_release runs as a key destructor, and under TSan that may be after
 * TSan's own destructor has torn down the thread's state: any instrumented
 * function entry or intercepted call then crashes.  So it is built without
 * instrumentation and makes raw system calls. */
#if defined(__has_attribute) && __has_attribute(disable_sanitizer_instrumentation)
#define ALT_NO_INSTR __attribute__((disable_sanitizer_instrumentation))
#else
#define ALT_NO_INSTR __attribute__((no_sanitize("address", "thread", "undefined")))
#endif

ALT_NO_INSTR static void alt_release(void *p)
{
    stack_t ss = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
    syscall(SYS_sigaltstack, &ss, NULL);
    syscall(SYS_munmap, p, (size_t)64 * 1024);
    altstack_mem = NULL;
}

static void alt_key_make(void)
{
    alt_key_ok = pthread_key_create(&alt_key, alt_release) == 0;
}

int may__altstack_setup(void)
{
    if (altstack_mem)
        return 0;
    size_t sz = 64 * 1024;
    void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    stack_t ss = { .ss_sp = p, .ss_size = sz, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0) {
        int e = errno;
        munmap(p, sz);
        return -e;
    }
    altstack_mem = p;
    pthread_once(&alt_once, alt_key_make);
    if (alt_key_ok)
        pthread_setspecific(alt_key, p); /* on failure: kept until exit, as before */
    return 0;
}

void may__altstack_free(void)
{
    if (!altstack_mem)
        return;
    if (alt_key_ok)
        pthread_setspecific(alt_key, NULL);
    alt_release(altstack_mem);
}
