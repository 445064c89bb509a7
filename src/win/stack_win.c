/*
 * stack_win.c - coroutine stacks on Windows x64: VirtualAlloc'd, guarded
 * the way Windows guards a thread's stack, and an overflow reported with
 * the coroutine's name (issue 14; the Linux counterparts are src/stack.c
 * and src/overflow.c).
 *
 * Why a PAGE_GUARD page and not a no-access page.  On Linux a PROT_NONE
 * guard page works because the SIGSEGV handler runs on an alternate signal
 * stack.  Windows has none: the kernel delivers an exception by pushing
 * the exception record and the CONTEXT (1.2 KiB, more with the extended
 * state) on the faulting thread's own stack, below its stack pointer, and
 * runs the dispatcher (vectored handlers first, then the frame-based ones)
 * there.  A coroutine that runs into a PAGE_NOACCESS page has its stack
 * pointer just above that page: the push itself faults, the kernel cannot
 * deliver anything, and the process dies at once, with no handler run and
 * no message.  A PAGE_GUARD page is the mechanism Windows provides for
 * exactly this: the first touch clears the guard bit and raises an
 * exception, and when the page lies inside the stack the TIB describes
 * (between DeallocationStack and StackBase, switch_win64.S), the memory
 * manager treats it as the thread's stack guard: it moves the guard page
 * one step down (growing a stack that is committed lazily), and when the
 * guard reaches the last pages of the reservation it commits the stack
 * guarantee there (SetThreadStackGuarantee) and raises STATUS_STACK_OVERFLOW,
 * so the dispatcher and our handler run in that committed headroom.  Both
 * Windows and wine work this way (wine: virtual.c, grow_thread_stack).
 *
 * Why the reservation is PAGE_READWRITE.  The protection given at
 * MEM_RESERVE is what a page gets when the system commits it without a
 * protection of its own, and wine's stack growth commits the next guard
 * page that way: it sets the committed and guard bits and leaves the
 * access bits as the reservation made them (wine 8.0
 * dlls/ntdll/unix/virtual.c, grow_thread_stack; the guarantee it commits
 * on overflow alike).  Reserved PAGE_NOACCESS, a lazily committed stack
 * gets a no-access page at its first growth and the next touch kills the
 * process, and an overflow runs its handler on no-access headroom (exit
 * 139 under wine 8.0).  wine's own thread stacks are mapped read-write in
 * full (virtual_alloc_thread_stack), so wine never meets this.  Windows
 * reserves thread stacks PAGE_READWRITE as well (RtlpCreateUserStack, as
 * ReactOS's lib/rtl/thread.c shows), so this is a stack's natural
 * reservation, not a workaround.
 *
 * A stack, from the lowest address up:
 *
 *   alloc  floor: 1 page, reserved, never committed: the hard end, where
 *          even the handler's stack has run out
 *          headroom: MAY__WIN_STACK_HEADROOM bytes, committed (commit 0)
 *          or reserved (commit > 0; the system commits it on overflow);
 *          the room the exception frame and the handler run in
 *   guard  1 page, PAGE_READWRITE | PAGE_GUARD
 *   limit  the usable stack, committed (commit 0: all of it; else its top
 *          commit bytes, the guard page right below them and the rest
 *          reserved, for the system to commit as the stack grows)
 *   base   StackBase: the top; a 64-byte header above it, in the last
 *          committed page, names the coroutine for the overflow report
 *
 * Invariants.  Every thread that runs coroutines has a stack guarantee of
 * MAY__WIN_STACK_HEADROOM (may__win_stack_thread_init): the system raises
 * the overflow when the guard page comes within the guarantee of the
 * floor, and commits the guarantee for the handler; a guarantee larger
 * than the headroom would put the report one step early, a smaller one
 * would leave the handler less room.  StackBase (the TIB's, while a
 * context runs on the stack) is 16-byte aligned and the header lies right
 * above it, so the handler finds the running coroutine from the TIB alone:
 * no registry, no lock.  The handler dereferences StackBase only after
 * VirtualQuery says it is committed memory of the same reservation as
 * DeallocationStack, so a thread's own stack (whose StackBase is the end
 * of its reservation) is never mistaken for ours.
 *
 * The handler takes no lock, allocates nothing and uses no CRT: it builds
 * its one line by hand and writes it with WriteFile, then ends the process
 * with STATUS_STACK_OVERFLOW, the exit code an unhandled overflow gives on
 * Windows.  (On Linux the handler lets the signal kill the process; on
 * Windows an unhandled exception on a coroutine stack finds no top-level
 * filter, which lives on the thread's own stack, so the runtime ends the
 * process itself.)
 *
 * Lock order: none.  Memory ordering: winstk_veh is published by a
 * seq_cst compare-and-swap (InterlockedCompareExchangePointer), so one
 * caller installs the handler; the header is written before any context
 * runs on the stack, by the thread that then switches to it.
 */
#include "win.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <windows.h>

#define WINSTK_MAGIC 0x6b74736e69777961ull /* "aywinstk" */

/* The 64 bytes above StackBase. */
struct winstk_hdr {
    uint64_t magic;   /* WINSTK_MAGIC while the stack exists */
    const char *name; /* the coroutine's name, for the report */
    char *alloc;      /* the reservation (= DeallocationStack) */
    char *guard;      /* the first guard page */
    size_t size;      /* usable bytes */
    char pad[24];
};
_Static_assert(sizeof(struct winstk_hdr) == 64, "the header is 64 bytes");

static void *volatile winstk_veh;

static size_t winstk_page(void)
{
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return si.dwPageSize;
}

int may__win_stack_alloc(may__win_stack *s, size_t size, size_t commit, const char *name)
{
    size_t page = winstk_page();
    if (size == 0 || size > ((size_t)1 << 40))
        return -EINVAL;
    size_t usable = (size + sizeof(struct winstk_hdr) + page - 1) & ~(page - 1);
    size_t total = page + MAY__WIN_STACK_HEADROOM + page + usable;
    /* PAGE_READWRITE: what the system commits growth with (above). */
    char *a = VirtualAlloc(NULL, total, MEM_RESERVE, PAGE_READWRITE);
    if (!a)
        return -ENOMEM;
    char *top = a + total;
    char *guard;
    if (commit == 0 || commit >= usable) {
        /* All committed but the floor: headroom, guard, usable. */
        if (!VirtualAlloc(a + page, total - page, MEM_COMMIT, PAGE_READWRITE))
            goto out_release;
        guard = a + page + MAY__WIN_STACK_HEADROOM;
        DWORD old;
        if (!VirtualProtect(guard, page, PAGE_READWRITE | PAGE_GUARD, &old))
            goto out_release;
    } else {
        /* The top commit bytes, and the guard page right below them. */
        size_t c = (commit + page - 1) & ~(page - 1);
        guard = top - c - page;
        if (!VirtualAlloc(top - c, c, MEM_COMMIT, PAGE_READWRITE) ||
            !VirtualAlloc(guard, page, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD))
            goto out_release;
    }
    s->alloc = a;
    s->alloc_size = total;
    s->limit = guard + page;
    s->base = top - sizeof(struct winstk_hdr);
    s->size = (size_t)(s->base - (a + page + MAY__WIN_STACK_HEADROOM + page));
    struct winstk_hdr *h = (struct winstk_hdr *)s->base;
    memset(h, 0, sizeof *h);
    h->magic = WINSTK_MAGIC;
    h->name = name ? name : "";
    h->alloc = a;
    h->guard = guard;
    h->size = s->size;
    return 0;

out_release:
    VirtualFree(a, 0, MEM_RELEASE);
    return -ENOMEM;
}

void may__win_stack_set_name(char *base, const char *name)
{
    struct winstk_hdr *h = (struct winstk_hdr *)base;
    if (h->magic == WINSTK_MAGIC)
        h->name = name ? name : "";
}

void may__win_stack_free(may__win_stack *s)
{
    if (s->alloc)
        VirtualFree(s->alloc, 0, MEM_RELEASE);
    memset(s, 0, sizeof *s);
}

void may__win_stack_ctx(const may__win_stack *s, may__win_ctx *ctx, void (*entry)(void *),
                        void *arg)
{
    may__win_ctx_make(ctx, s->base, s->base, s->limit, s->alloc, entry, arg);
}

int may__win_stack_thread_init(void)
{
    ULONG g = (ULONG)MAY__WIN_STACK_HEADROOM;
    return SetThreadStackGuarantee(&g) ? 0 : -EINVAL;
}

/* A word of the running thread's TEB.  (Not __readgsqword: GCC 12's
 * -Warray-bounds rejects mingw-w64's inline version of it.) */
static char *winstk_teb(uintptr_t off)
{
    char *v;
    __asm__ volatile("movq %%gs:(%1), %0" : "=r"(v) : "r"(off));
    return v;
}

/* The header of the stack the TIB says we run on, or NULL.  It is the last
 * 64 bytes of the reservation, at or above StackBase (the library puts a
 * coroutine's control block between the two, and StackBase at the top of
 * what the coroutine may use, so stack walks end there): the end of the
 * committed region that holds StackBase, which runs to the reservation's
 * end (the top pages are committed read-write together). */
static const struct winstk_hdr *winstk_current(void)
{
    char *base = winstk_teb(0x08);       /* TIB StackBase */
    char *dealloc = winstk_teb(0x1478);  /* TEB DeallocationStack */
    MEMORY_BASIC_INFORMATION mbi;
    if (((uintptr_t)base & 15) || !VirtualQuery(base - 1, &mbi, sizeof mbi))
        return NULL;
    if (mbi.AllocationBase != dealloc || mbi.State != MEM_COMMIT ||
        (mbi.Protect & (PAGE_GUARD | PAGE_NOACCESS)) ||
        (char *)mbi.BaseAddress + mbi.RegionSize < base + sizeof(struct winstk_hdr))
        return NULL;
    const struct winstk_hdr *h =
        (const struct winstk_hdr *)((char *)mbi.BaseAddress + mbi.RegionSize -
                                    sizeof(struct winstk_hdr));
    return h->magic == WINSTK_MAGIC && h->alloc == dealloc ? h : NULL;
}

const char *may__win_stack_current_name(void)
{
    const struct winstk_hdr *h = winstk_current();
    return h ? h->name : NULL;
}

static void winstk_put(char *buf, size_t *n, size_t cap, const char *s)
{
    while (*s && *n + 1 < cap)
        buf[(*n)++] = *s++;
}

static void winstk_num(char *buf, size_t *n, size_t cap, uint64_t v, unsigned radix)
{
    char d[24];
    int k = 0;
    do {
        d[k++] = "0123456789abcdef"[v % radix];
        v /= radix;
    } while (v);
    if (radix == 16)
        winstk_put(buf, n, cap, "0x");
    while (k && *n + 1 < cap)
        buf[(*n)++] = d[--k];
}

static LONG CALLBACK winstk_handler(EXCEPTION_POINTERS *ep)
{
    const EXCEPTION_RECORD *r = ep->ExceptionRecord;
    if (r->ExceptionCode != STATUS_STACK_OVERFLOW &&
        r->ExceptionCode != STATUS_GUARD_PAGE_VIOLATION)
        return EXCEPTION_CONTINUE_SEARCH;
    const struct winstk_hdr *h = winstk_current();
    if (!h)
        return EXCEPTION_CONTINUE_SEARCH; /* not on a coroutine stack */
    const char *addr = NULL;
    if (r->NumberParameters >= 2)
        addr = (const char *)r->ExceptionInformation[1];
    /* A guard page violation is ours only inside this stack's guard and
     * below it (a program may guard pages of its own). */
    if (r->ExceptionCode == STATUS_GUARD_PAGE_VIOLATION &&
        (addr < h->alloc || addr >= h->guard + winstk_page()))
        return EXCEPTION_CONTINUE_SEARCH;
    char buf[320];
    size_t n = 0;
    winstk_put(buf, &n, sizeof buf, "may: stack overflow in coroutine \"");
    winstk_put(buf, &n, sizeof buf, h->name);
    winstk_put(buf, &n, sizeof buf, "\" (stack size ");
    winstk_num(buf, &n, sizeof buf, h->size, 10);
    winstk_put(buf, &n, sizeof buf, " bytes");
    if (addr) {
        winstk_put(buf, &n, sizeof buf, ", fault at ");
        winstk_num(buf, &n, sizeof buf, (uintptr_t)addr, 16);
    }
    winstk_put(buf, &n, sizeof buf,
               r->ExceptionCode == STATUS_STACK_OVERFLOW ? "; STATUS_STACK_OVERFLOW)\n"
                                                         : "; STATUS_GUARD_PAGE_VIOLATION)\n");
    DWORD w;
    WriteFile(GetStdHandle(STD_ERROR_HANDLE), buf, (DWORD)n, &w, NULL);
    TerminateProcess(GetCurrentProcess(), (UINT)STATUS_STACK_OVERFLOW);
    return EXCEPTION_CONTINUE_SEARCH; /* not reached */
}

int may__win_overflow_install(void)
{
    if (winstk_veh)
        return 0;
    void *v = AddVectoredExceptionHandler(1, winstk_handler);
    if (!v)
        return -ENOMEM;
    /* seq_cst: one installer wins; a loser removes its own handler. */
    if (InterlockedCompareExchangePointer((void *volatile *)&winstk_veh, v, NULL) != NULL)
        RemoveVectoredExceptionHandler(v);
    return 0;
}
