/* Fault injection: make the Nth call from each place where libmay calls a
 * resource function (malloc, mmap, epoll_ctl, socket, pthread_create, ...)
 * fail, for every N a workload reaches, and check that each failure comes out
 * of the public API as a clear error, with no crash, hang, abort, leaked
 * descriptor or (under ASan) leaked memory, and that the runtime works again
 * afterwards.
 *
 * How.  tests/fault.cmake links this test with -Wl,--wrap=F for each
 * resource function F, so every call to F in the statically linked objects,
 * libmay's included, comes to __wrap_F below; the calls libc and the
 * sanitizer runtimes make from their own shared or internal code do not.  A
 * wrapper counts only calls whose return address lies in libmay: the symbol
 * table of /proc/self/exe says which functions are libmay's (globals named
 * may_*, and the local symbols of the source files tests/fault.cmake passes
 * in MAY_FAULT_LIB_SOURCES), so neither this file's own calls nor a
 * sanitizer runtime's (ASan calls sigaltstack for every thread) count.  (A
 * tail call from libmay to F is invisible: its return address is its
 * caller's.)  Calls are counted per call site (return address), so that a
 * retry after an injected failure does not shift the numbering of other
 * sites.  When the count of a site reaches the chosen N, the call fails as
 * the real one would (NULL / MAP_FAILED / -1 with errno ENOMEM, EMFILE, ...;
 * pthread_create returns EAGAIN, getaddrinfo EAI_MEMORY), and the site is
 * written at once, so that a crash or a hang can still be traced to it.
 *
 * The driver (no arguments) forks a child that runs the workload with no
 * fault, twice, to find the call sites and their counts, then one child per
 * point (site, N) for N in 1..count (past 16, a few evenly spaced N and the
 * last, unless FAULT_ALL=1; an even sample of the points when MAY_TEST_SCALE
 * is below 0.1, or FAULT_POINTS=n of them), FAULT_JOBS (default 2) at a
 * time, each killed after FAULT_TIMEOUT seconds (default 30: a hang).
 *
 * A child runs the workload with the fault armed: every public call must
 * return success or a negative errno; the workload stops at the first error
 * and cleans up (closes its descriptors, joins its coroutines, frees its
 * objects, may_shutdown() == 0).  The first error must say what happened:
 * the errno the fault injected (or one that the table `clear` accepts for
 * that function).  A fault may also be absorbed (the workload completes):
 * the library retried or did without.  Then it runs the workload again
 * without a fault, which must complete: the failure left nothing behind
 * that breaks a later start.  No descriptor may stay open, and under ASan
 * the leak check runs at its exit.  A point passes when its child exits 0.
 * A point whose site was not reached this time (threads vary the counts)
 * passes too.  Points in `known` are expected to fail until the library fix
 * written next to each is made (XFAIL; an XPASS means the entry is stale).
 *
 * A child is forked, not exec'd: the driver never starts the runtime, so
 * the fork is single-threaded, and no binfmt set-up is needed under qemu.
 * FAULT_ONLY=F[:N] walks the sites of one function (at one N) and prints
 * every child's output, for debugging. */
#include "test.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* The functions that can fail, and how                                     */
/* ------------------------------------------------------------------------ */

/* Keep in step with MAY_FAULT_WRAP in tests/fault.cmake. */
#define FAULT_FUNCS(X)                                                         \
    X(malloc, ENOMEM)                                                          \
    X(calloc, ENOMEM)                                                          \
    X(realloc, ENOMEM)                                                         \
    X(aligned_alloc, ENOMEM)                                                   \
    X(mmap, ENOMEM)                                                            \
    X(mprotect, ENOMEM)                                                        \
    X(sigaltstack, ENOMEM)                                                     \
    X(epoll_create1, EMFILE)                                                   \
    X(epoll_ctl, ENOMEM)                                                       \
    X(eventfd, EMFILE)                                                         \
    X(socket, EMFILE)                                                          \
    X(socketpair, EMFILE)                                                      \
    X(accept4, EMFILE)                                                         \
    X(bind, EADDRINUSE)                                                        \
    X(listen, EADDRINUSE)                                                      \
    X(connect, EADDRNOTAVAIL)                                                  \
    X(pthread_create, EAGAIN)                                                  \
    X(pthread_key_create, EAGAIN)                                              \
    X(pthread_setspecific, ENOMEM)                                             \
    X(getaddrinfo, ENOMEM) /* EAI_MEMORY */                                    \
    X(open, EMFILE)

#define X_ENUM(f, e) F_##f,
enum { FAULT_FUNCS(X_ENUM) NFUNCS };
#define X_NAME(f, e) #f,
static const char *const fn_name[NFUNCS] = { FAULT_FUNCS(X_NAME) };
#define X_ERR(f, e) e,
static const int fn_errno[NFUNCS] = { FAULT_FUNCS(X_ERR) };

/* Errors that also count as clear for a fault in a function, besides the one
 * injected: what the library documents it turns that failure into. */
static const struct {
    int fn;
    int err;
} clear[] = {
    { -1, 0 }, /* none so far */
};

/* Points expected to fail until a fix is made in code this test's author
 * did not own (sched.c, stack.c, parker.c, internal.h, may.h), matched by
 * the wrapped function and the libmay function holding the call site (the
 * name before the '+' in "FIRED malloc#3 at gq_push_array+0xa7"), with the
 * fix, e.g. { F_malloc, "gq_push_array", "sched.c gq_ring_reserve: ..." }. */
static const struct {
    int fn;
    const char *site;
    const char *fix;
} known[] = {
    { -1, NULL, NULL }, /* none so far */
};

/* ------------------------------------------------------------------------ */
/* libmay's functions, from the ELF symbol table                           */
/* ------------------------------------------------------------------------ */

typedef struct {
    uintptr_t lo, hi;
    const char *name;
    int lib;
} fsym;

int main(int argc, char **argv);

static fsym *syms;
static size_t nsyms;
static char *elf_img;

#ifndef MAY_FAULT_LIB_SOURCES
#define MAY_FAULT_LIB_SOURCES                                                  \
    "runtime.c:exit.c:sched.c:runq.c:monitor.c:coroutine.c:start.c:stats.c:"   \
    "stack.c:overflow.c:timer.c:poll_epoll.c:parker.c:waitq.c:cls.c:fork.c:"   \
    "scope.c:gen.c:sync.c:chan.c:offload.c:resolve.c:file.c:io.c:udp_unix.c:"  \
    "debug.c:lockrank.c:switch.S"
#endif

static int lib_source(const char *name)
{
    const char *list = MAY_FAULT_LIB_SOURCES;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

static int sym_cmp(const void *a, const void *b)
{
    const fsym *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Read the function symbols of our own executable.  0 or -1. */
static int load_symbols(void)
{
    FILE *f = fopen("/proc/self/exe", "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    elf_img = malloc((size_t)size);
    if (!elf_img || fread(elf_img, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        return -1;
    }
    fclose(f);
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)elf_img;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64)
        return -1;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(elf_img + eh->e_shoff);
    const Elf64_Shdr *st = NULL;
    for (int i = 0; i < eh->e_shnum; i++)
        if (sh[i].sh_type == SHT_SYMTAB)
            st = &sh[i];
    if (!st)
        return -1;
    const Elf64_Sym *s = (const Elf64_Sym *)(elf_img + st->sh_offset);
    size_t n = st->sh_size / sizeof *s;
    const char *str = elf_img + sh[st->sh_link].sh_offset;
    syms = calloc(n, sizeof *syms);
    if (!syms)
        return -1;
    uintptr_t main_val = 0;
    int in_lib = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = str + s[i].st_name;
        int type = ELF64_ST_TYPE(s[i].st_info), bind = ELF64_ST_BIND(s[i].st_info);
        if (type == STT_FILE) {
            in_lib = lib_source(name);
            continue;
        }
        if (type != STT_FUNC || !s[i].st_value)
            continue;
        if (strcmp(name, "main") == 0)
            main_val = s[i].st_value;
        /* libmay's hidden globals (may__*) are local in the executable, and
         * come after the last file's locals */
        int lib = strncmp(name, "may_", 4) == 0 || (bind == STB_LOCAL && in_lib);
        syms[nsyms++] = (fsym){ s[i].st_value, s[i].st_value + (s[i].st_size ? s[i].st_size : 1),
                                name, lib };
    }
    if (!main_val)
        return -1;
    uintptr_t bias = (uintptr_t)&main - main_val;
    for (size_t i = 0; i < nsyms; i++) {
        syms[i].lo += bias;
        syms[i].hi += bias;
    }
    qsort(syms, nsyms, sizeof *syms, sym_cmp);
    return 0;
}

/* The function holding code address a, or NULL.  No allocation, no lock. */
static const fsym *sym_of(uintptr_t a)
{
    size_t lo = 0, hi = nsyms;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (syms[mid].lo <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i-- > 0 && i + 8 >= lo;) /* nested sizes: look back a bit */
        if (syms[i].lo <= a && a < syms[i].hi)
            return &syms[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The wrappers                                                             */
/* ------------------------------------------------------------------------ */

static _Atomic int armed;              /* counting (the workload runs) */
static uintptr_t fail_ra;              /* the point: the fail_n-th call made */
static long fail_n;                    /* by the instruction before fail_ra */
static _Atomic int fired;
static const char *volatile cur_step = "-"; /* the workload's step, for reports */

/* Call sites, by return address (the same in every child: they are forked
 * from one process), with the calls each has made. */
#define NSITES 4096
static struct site {
    _Atomic uintptr_t ra;
    _Atomic int fn;
    _Atomic long n;
} sites[NSITES];

static struct site *site_of(uintptr_t ra, int f)
{
    size_t h = (size_t)((ra * 0x9e3779b97f4a7c15ULL) >> 52);
    for (size_t i = 0; i < NSITES; i++) {
        struct site *s = &sites[(h + i) & (NSITES - 1)];
        uintptr_t cur = atomic_load(&s->ra);
        if (cur == 0 && atomic_compare_exchange_strong(&s->ra, &cur, ra)) {
            atomic_store(&s->fn, f);
            return s;
        }
        if (cur == ra)
            return s;
    }
    return NULL;
}

static void out_raw(const char *s)
{
    ssize_t r = write(1, s, strlen(s));
    (void)r;
}

/* "name+0xoff" for a return address. */
static void site_name(uintptr_t ra, char *buf, size_t n)
{
    const fsym *s = sym_of(ra - 1);
    if (s)
        snprintf(buf, n, "%s+0x%lx", s->name, (unsigned long)(ra - s->lo));
    else
        snprintf(buf, n, "0x%lx", (unsigned long)ra);
}

/* The wrappers run before main too: the TSan runtime calls
 * pthread_key_create and sigaltstack while it initialises, before
 * instrumented code may run.  So they, and fault_hit up to its test of
 * `armed`, are not instrumented (armed is set only once main runs). */
#if defined(__has_attribute)
#if __has_attribute(disable_sanitizer_instrumentation)
#define WRAPPER __attribute__((disable_sanitizer_instrumentation))
#endif
#endif
#ifndef WRAPPER
#define WRAPPER __attribute__((no_sanitize("thread")))
#endif

/* Count a call of f from return address ra; 1 when it must fail. */
static WRAPPER int fault_hit(int f, void *ra_p)
{
    if (!atomic_load_explicit(&armed, memory_order_acquire))
        return 0;
    uintptr_t ra = (uintptr_t)ra_p;
    const fsym *fs = sym_of(ra - 1);
    if (!fs || !fs->lib)
        return 0;
    struct site *s = site_of(ra, f);
    if (!s)
        return 0;
    long n = atomic_fetch_add_explicit(&s->n, 1, memory_order_relaxed) + 1;
    if (ra != fail_ra || n != fail_n)
        return 0;
    atomic_store(&fired, 1);
    /* Written at once and without stdio: we may be deep in the library,
     * holding its locks, and the child may die before it reports. */
    char buf[256], where[128];
    site_name(ra, where, sizeof where);
    snprintf(buf, sizeof buf, "FIRED %s#%ld at %s (step %s)\n", fn_name[f], n, where, cur_step);
    out_raw(buf);
    return 1;
}

#define HIT(f) fault_hit(F_##f, __builtin_return_address(0))
#define FAIL_ERRNO(f, ret)                                                     \
    do {                                                                       \
        if (HIT(f)) {                                                          \
            errno = fn_errno[F_##f];                                           \
            return ret;                                                        \
        }                                                                      \
    } while (0)

void *__real_malloc(size_t n);
WRAPPER void *__wrap_malloc(size_t n)
{
    FAIL_ERRNO(malloc, NULL);
    return __real_malloc(n);
}

void *__real_calloc(size_t n, size_t sz);
WRAPPER void *__wrap_calloc(size_t n, size_t sz)
{
    FAIL_ERRNO(calloc, NULL);
    return __real_calloc(n, sz);
}

void *__real_realloc(void *p, size_t n);
WRAPPER void *__wrap_realloc(void *p, size_t n)
{
    FAIL_ERRNO(realloc, NULL);
    return __real_realloc(p, n);
}

void *__real_aligned_alloc(size_t al, size_t n);
WRAPPER void *__wrap_aligned_alloc(size_t al, size_t n)
{
    FAIL_ERRNO(aligned_alloc, NULL);
    return __real_aligned_alloc(al, n);
}

void *__real_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off);
WRAPPER void *__wrap_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
    FAIL_ERRNO(mmap, MAP_FAILED);
    return __real_mmap(a, n, prot, flags, fd, off);
}

int __real_mprotect(void *a, size_t n, int prot);
WRAPPER int __wrap_mprotect(void *a, size_t n, int prot)
{
    FAIL_ERRNO(mprotect, -1);
    return __real_mprotect(a, n, prot);
}

int __real_sigaltstack(const stack_t *ss, stack_t *old);
WRAPPER int __wrap_sigaltstack(const stack_t *ss, stack_t *old)
{
    /* Only installing one can run out of memory; SS_DISABLE cannot fail. */
    if (ss && !(ss->ss_flags & SS_DISABLE))
        FAIL_ERRNO(sigaltstack, -1);
    return __real_sigaltstack(ss, old);
}

int __real_epoll_create1(int flags);
WRAPPER int __wrap_epoll_create1(int flags)
{
    FAIL_ERRNO(epoll_create1, -1);
    return __real_epoll_create1(flags);
}

int __real_epoll_ctl(int ep, int op, int fd, struct epoll_event *ev);
WRAPPER int __wrap_epoll_ctl(int ep, int op, int fd, struct epoll_event *ev)
{
    /* Adding (or modifying) allocates in the kernel; deleting does not. */
    if (op != EPOLL_CTL_DEL)
        FAIL_ERRNO(epoll_ctl, -1);
    return __real_epoll_ctl(ep, op, fd, ev);
}

int __real_eventfd(unsigned v, int flags);
WRAPPER int __wrap_eventfd(unsigned v, int flags)
{
    FAIL_ERRNO(eventfd, -1);
    return __real_eventfd(v, flags);
}

int __real_socket(int d, int t, int p);
WRAPPER int __wrap_socket(int d, int t, int p)
{
    FAIL_ERRNO(socket, -1);
    return __real_socket(d, t, p);
}

int __real_socketpair(int d, int t, int p, int sv[2]);
WRAPPER int __wrap_socketpair(int d, int t, int p, int sv[2])
{
    FAIL_ERRNO(socketpair, -1);
    return __real_socketpair(d, t, p, sv);
}

int __real_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
WRAPPER int __wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    FAIL_ERRNO(accept4, -1);
    return __real_accept4(fd, sa, len, flags);
}

int __real_bind(int fd, const struct sockaddr *sa, socklen_t len);
WRAPPER int __wrap_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    FAIL_ERRNO(bind, -1);
    return __real_bind(fd, sa, len);
}

int __real_listen(int fd, int backlog);
WRAPPER int __wrap_listen(int fd, int backlog)
{
    FAIL_ERRNO(listen, -1);
    return __real_listen(fd, backlog);
}

int __real_connect(int fd, const struct sockaddr *sa, socklen_t len);
WRAPPER int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    FAIL_ERRNO(connect, -1);
    return __real_connect(fd, sa, len);
}

int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
WRAPPER int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *),
                                  void *arg)
{
    if (HIT(pthread_create))
        return EAGAIN;
    return __real_pthread_create(t, a, fn, arg);
}

int __real_pthread_key_create(pthread_key_t *k, void (*d)(void *));
WRAPPER int __wrap_pthread_key_create(pthread_key_t *k, void (*d)(void *))
{
    if (HIT(pthread_key_create))
        return EAGAIN;
    return __real_pthread_key_create(k, d);
}

int __real_pthread_setspecific(pthread_key_t k, const void *v);
WRAPPER int __wrap_pthread_setspecific(pthread_key_t k, const void *v)
{
    if (HIT(pthread_setspecific))
        return ENOMEM;
    return __real_pthread_setspecific(k, v);
}

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
WRAPPER int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    if (HIT(getaddrinfo))
        return EAI_MEMORY;
    return __real_getaddrinfo(node, service, hints, res);
}

int __real_open(const char *path, int flags, ...);
WRAPPER int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    FAIL_ERRNO(open, -1);
    return __real_open(path, flags, mode);
}

/* ------------------------------------------------------------------------ */
/* The child: what the public API says                                      */
/* ------------------------------------------------------------------------ */

static _Atomic long first_err;          /* the first error, 0: none yet */
static const char *_Atomic first_call;  /* the call that returned it */

static _Noreturn void bad(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("FAIL: %s (step %s)\n", buf, cur_step);
    exit(1);
}

/* Every public call goes through here: a result is success (>= 0) or a
 * negative errno; the first error is the one the fault must explain. */
static long ck(const char *call, long r)
{
    if (r < -4095)
        bad("%s returned %ld: not a negative errno", call, r);
    if (r < 0) {
        long zero = 0;
        if (atomic_compare_exchange_strong(&first_err, &zero, r))
            atomic_store(&first_call, call);
        printf("  %s -> %ld (%s)\n", call, r, strerror((int)-r));
    }
    return r;
}
#define CK(e) ck(#e, (long)(e))
#define ERR(r) ((void *)(intptr_t)(r))
#define DL_LONG may_deadline_in(TEST_MS(10000)) /* a safety net, never reached */

static int failed(void)
{
    return atomic_load(&first_err) != 0;
}

/* Join the coroutines of a step.  When one ends with an error, cancel the
 * others, so that none waits for a partner that is gone.  Returns the first
 * error of a coroutine, or 0. */
static long join_group(may_co_t **cos, int n)
{
    long err = 0;
    int left = 0, cancelled = 0;
    for (int i = 0; i < n; i++)
        left += cos[i] != NULL;
    while (left) {
        for (int i = 0; i < n; i++) {
            if (!cos[i])
                continue;
            void *res;
            int r = may_join(cos[i], &res, cancelled ? MAY_FOREVER : may_deadline_in(TEST_MS(2)));
            if (r == -ETIMEDOUT)
                continue;
            if (r < 0)
                bad("may_join -> %d", r);
            if (r == MAY_PANICKED)
                bad("a coroutine panicked");
            cos[i] = NULL;
            left--;
            long v = (long)(intptr_t)res;
            if (v < 0 && !err)
                err = v;
            if (v < 0 && !cancelled) {
                cancelled = 1;
                for (int k = 0; k < n; k++)
                    if (cos[k])
                        may_cancel(cos[k]);
            }
        }
    }
    return err;
}

/* Spawn into cos[*n]; on failure cancel and join what the step has. */
static long spawn_in(may_co_t **cos, int *n, may_fn_t fn, void *arg, const may_spawn_opts_t *o,
                     const char *what)
{
    long r = ck(what, may_spawn(&cos[*n], fn, arg, o));
    if (r < 0) {
        for (int k = 0; k < *n; k++)
            may_cancel(cos[k]);
        join_group(cos, *n);
        return r;
    }
    (*n)++;
    return 0;
}

/* ---- step: spawn, join, custom stacks, detached, CLS, generator, scope -- */

static void *co_value(void *arg)
{
    volatile char pad[2048]; /* some stack */
    pad[0] = (char)(intptr_t)arg;
    return (void *)((intptr_t)arg * 2 + (pad[0] - (char)(intptr_t)arg));
}

static void *gen_fn(may_gen_t *g, void *arg)
{
    (void)arg;
    may_gen_yield(g, (void *)1);
    may_gen_yield(g, (void *)2);
    return (void *)3;
}

static void *co_misc(void *arg)
{
    (void)arg;
    long r;
    int marker;
    may_key_t key;
    if ((r = CK(may_key_create(&key, NULL))) < 0)
        return ERR(r);
    r = CK(may_setspecific(key, &marker));
    if (r == 0 && may_getspecific(key) != &marker)
        bad("may_getspecific lost the value");
    may_key_delete(key);
    if (r < 0)
        return ERR(r);

    may_gen_t *g;
    if ((r = CK(may_gen_new(&g, gen_fn, NULL, 0))) < 0)
        return ERR(r);
    for (intptr_t i = 1; i <= 3; i++) {
        void *v;
        r = CK(may_gen_resume(g, &v));
        if (r != (i < 3) || (intptr_t)v != i)
            bad("generator gave %ld, %p", r, v);
    }
    may_gen_free(g);

    may_scope_t *s;
    if ((r = CK(may_scope_new(&s))) < 0)
        return ERR(r);
    for (intptr_t i = 0; i < 2 && r == 0; i++)
        r = CK(may_scope_spawn(s, co_value, (void *)i, NULL));
    if (r == 0 && (r = CK(may_scope_wait(s, DL_LONG))) > 0)
        bad("may_scope_wait: %ld panicked", r);
    may_scope_free(s);
    return ERR(r < 0 ? r : 0);
}

static may_event_t *detached_ev; /* freed by workload() after may_shutdown */

static void *co_detached(void *arg)
{
    may_event_fire(arg);
    return NULL;
}

static long step_spawn(void)
{
    may_co_t *cos[4];
    int n = 0;
    long r;
    may_spawn_opts_t big = { .name = "big", .stack_size = 128 * 1024 };
    may_spawn_opts_t pinned = { .name = "pinned", .worker = 1, .flags = MAY_SPAWN_PINNED };
    if ((r = spawn_in(cos, &n, co_value, (void *)21, NULL, "may_spawn(default)")) < 0 ||
        (r = spawn_in(cos, &n, co_value, (void *)22, &big, "may_spawn(stack 128K)")) < 0 ||
        (r = spawn_in(cos, &n, co_value, (void *)23, &pinned, "may_spawn(pinned)")) < 0 ||
        (r = spawn_in(cos, &n, co_misc, NULL, NULL, "may_spawn(misc)")) < 0)
        return r;
    /* join by hand: the values are checked */
    for (int i = 0; i < 3; i++) {
        void *v;
        int j = may_join(cos[i], &v, MAY_FOREVER);
        cos[i] = NULL;
        if (j != MAY_DONE || (intptr_t)v != 2 * (21 + i))
            bad("join %d gave %d, %p", i, j, v);
    }
    if ((r = join_group(cos, n)) < 0)
        return r;

    /* A detached one, seen through an event.  The event is freed after
     * may_shutdown: when the wait returns, may_event_fire may still be
     * touching it (see the report on may_event_fire / may_wg_add). */
    if ((r = CK(may_event_new(&detached_ev))) < 0)
        return r;
    if ((r = CK(may_go(co_detached, detached_ev))) == 0)
        r = CK(may_event_wait(detached_ev, DL_LONG));

    /* a generator on a plain thread (it gets a signal stack) */
    may_gen_t *g;
    if (r == 0 && (r = CK(may_gen_new(&g, gen_fn, NULL, 0))) == 0) {
        void *v;
        while ((r = CK(may_gen_resume(g, &v))) == 1)
            ;
        may_gen_free(g);
        if (r == 0 && (intptr_t)v != 3)
            bad("generator gave %p", v);
    }

    /* coroutine-local storage from a plain thread */
    if (r == 0) {
        may_key_t key;
        static int marker;
        if ((r = CK(may_key_create(&key, NULL))) < 0)
            return r;
        r = CK(may_setspecific(key, &marker));
        if (r == 0 && may_getspecific(key) != &marker)
            bad("may_getspecific lost the thread's value");
        may_setspecific(key, NULL);
        may_key_delete(key);
    }
    return r;
}

/* ---- step: mutex, condvar, rwlock, semaphore, barrier, wait group ------- */

typedef struct {
    may_mutex_t *m;
    may_cond_t *c;
    may_rwlock_t *rw;
    may_sem_t *s;
    may_barrier_t *b;
    may_wg_t *wg;
    long counter;
} sync_objs;

static void *co_sync_worker(void *arg)
{
    sync_objs *o = arg;
    long r;
    for (int i = 0; i < 50; i++) {
        if ((r = CK(may_mutex_lock(o->m, DL_LONG))) < 0)
            return ERR(r);
        if (++o->counter == 100)
            may_cond_broadcast(o->c);
        may_mutex_unlock(o->m);
        if (i % 10 == 0)
            may_yield();
    }
    if ((r = CK(may_rwlock_rdlock(o->rw, DL_LONG))) < 0)
        return ERR(r);
    may_rwlock_rdunlock(o->rw);
    if ((r = CK(may_sem_post(o->s))) < 0 || (r = CK(may_barrier_wait(o->b, DL_LONG))) < 0)
        return ERR(r);
    return ERR(CK(may_wg_done(o->wg)));
}

static void *co_sync_waiter(void *arg)
{
    sync_objs *o = arg;
    long r;
    if ((r = CK(may_mutex_lock(o->m, DL_LONG))) < 0)
        return ERR(r);
    while (o->counter < 100 && r == 0)
        r = CK(may_cond_wait(o->c, o->m, DL_LONG));
    may_mutex_unlock(o->m);
    if (r < 0)
        return ERR(r);
    if ((r = CK(may_rwlock_wrlock(o->rw, DL_LONG))) < 0)
        return ERR(r);
    may_rwlock_wrunlock(o->rw);
    for (int i = 0; i < 2; i++)
        if ((r = CK(may_sem_wait(o->s, DL_LONG))) < 0)
            return ERR(r);
    if ((r = CK(may_barrier_wait(o->b, DL_LONG))) < 0 ||
        (r = CK(may_wg_wait(o->wg, DL_LONG))) < 0)
        return ERR(r);
    return NULL;
}

static long step_sync(void)
{
    sync_objs o = { 0 };
    long r;
    if ((r = CK(may_mutex_new(&o.m))) < 0)
        goto out;
    if ((r = CK(may_cond_new(&o.c))) < 0)
        goto out;
    if ((r = CK(may_rwlock_new(&o.rw))) < 0)
        goto out;
    if ((r = CK(may_sem_new(&o.s, 0))) < 0)
        goto out;
    if ((r = CK(may_barrier_new(&o.b, 3))) < 0)
        goto out;
    if ((r = CK(may_wg_new(&o.wg))) < 0)
        goto out;
    may_wg_add(o.wg, 2);
    may_co_t *cos[3];
    int n = 0;
    if ((r = spawn_in(cos, &n, co_sync_waiter, &o, NULL, "may_spawn(waiter)")) < 0 ||
        (r = spawn_in(cos, &n, co_sync_worker, &o, NULL, "may_spawn(worker 1)")) < 0 ||
        (r = spawn_in(cos, &n, co_sync_worker, &o, NULL, "may_spawn(worker 2)")) < 0)
        goto out;
    r = join_group(cos, n);
    if (r == 0 && o.counter != 100)
        bad("counter %ld", o.counter);
out:
    may_wg_free(o.wg);
    may_barrier_free(o.b);
    may_sem_free(o.s);
    may_rwlock_free(o.rw);
    may_cond_free(o.c);
    may_mutex_free(o.m);
    return r;
}

/* ---- step: channels (unbounded, bounded, rendezvous) and select -------- */

typedef struct {
    may_chan_t *u, *b, *z;
} chans;

#define N_UNBOUNDED 40 /* grows the ring three times */

static void *co_producer(void *arg)
{
    chans *c = arg;
    long r;
    for (int i = 0; i < N_UNBOUNDED; i++)
        if ((r = CK(may_chan_send(c->u, &i, DL_LONG))) < 0)
            return ERR(r);
    may_chan_close(c->u);
    for (int i = 0; i < 10; i++)
        if ((r = CK(may_chan_send(c->b, &i, DL_LONG))) < 0)
            return ERR(r);
    for (int i = 0; i < 3; i++)
        if ((r = CK(may_chan_send(c->z, &i, DL_LONG))) < 0)
            return ERR(r);
    return NULL;
}

static void *co_consumer(void *arg)
{
    chans *c = arg;
    long r, sum = 0;
    int v;
    /* drain the unbounded one after the producer is done with it */
    while ((r = may_chan_recv(c->u, &v, DL_LONG)) == 0)
        sum += v;
    if (r != -EPIPE)
        return ERR(ck("may_chan_recv(unbounded)", r));
    if (sum != N_UNBOUNDED * (N_UNBOUNDED - 1) / 2)
        bad("unbounded channel sum %ld", sum);
    for (int i = 0; i < 10; i++) {
        if ((r = CK(may_chan_recv(c->b, &v, DL_LONG))) < 0)
            return ERR(r);
        if (v != i)
            bad("bounded channel gave %d for %d", v, i);
    }
    /* more cases than select keeps on its stack: it allocates */
    may_select_case_t cases[17];
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 17; k++)
            cases[k] = (may_select_case_t){ .op = MAY_SELECT_RECV, .chan = c->z, .elem = &v };
        if ((r = CK(may_select(cases, 17, DL_LONG))) < 0)
            return ERR(r);
        if (cases[r].result != 0 || v != i)
            bad("select gave %d for %d", v, i);
    }
    return NULL;
}

static long step_chan(void)
{
    chans c = { 0 };
    long r;
    if ((r = CK(may_chan_new(&c.u, sizeof(int), MAY_CHAN_UNBOUNDED))) < 0 ||
        (r = CK(may_chan_new(&c.b, sizeof(int), 4))) < 0 ||
        (r = CK(may_chan_new(&c.z, sizeof(int), 0))) < 0)
        goto out;
    may_co_t *cos[2];
    int n = 0;
    if ((r = spawn_in(cos, &n, co_producer, &c, NULL, "may_spawn(producer)")) < 0 ||
        (r = spawn_in(cos, &n, co_consumer, &c, NULL, "may_spawn(consumer)")) < 0)
        goto out;
    r = join_group(cos, n);
out:
    may_chan_free(c.z);
    may_chan_free(c.b);
    may_chan_free(c.u);
    return r;
}

/* ---- step: timers -------------------------------------------------------- */

static void *co_timers(void *arg)
{
    may_event_t *never = arg;
    long r;
    int64_t t0 = may_now();
    if ((r = CK(may_sleep(TEST_MS(1)))) < 0)
        return ERR(r);
    if (may_now() - t0 < TEST_MS(1))
        bad("may_sleep(1 ms) returned after %lld ns", (long long)(may_now() - t0));
    t0 = may_now();
    r = may_event_wait(never, may_deadline_in(TEST_MS(2)));
    if (r != -ETIMEDOUT)
        return ERR(ck("may_event_wait(never, 2 ms)", r == 0 ? -EPROTO : r));
    if (may_now() - t0 < TEST_MS(2))
        bad("a 2 ms deadline passed after %lld ns", (long long)(may_now() - t0));
    return NULL;
}

static long step_timers(void)
{
    may_event_t *never;
    long r;
    if ((r = CK(may_event_new(&never))) < 0)
        return r;
    may_co_t *cos[1];
    int n = 0;
    if ((r = spawn_in(cos, &n, co_timers, never, NULL, "may_spawn(timers)")) == 0)
        r = join_group(cos, n);
    may_event_free(never);
    return r;
}

/* ---- step: may_fd_wait on a pipe and an eventfd --------------------------- */

static int fdp[2] = { -1, -1 }, efd = -1; /* made by the test, not libmay */

static void *co_pipe_reader(void *arg)
{
    (void)arg;
    long r;
    char c;
    if ((r = CK(may_fd_wait(fdp[0], MAY_READ, DL_LONG))) < 0)
        return ERR(r);
    if ((r = CK(may_read(fdp[0], &c, 1, DL_LONG))) < 0)
        return ERR(r);
    if (r != 1 || c != 'x')
        bad("pipe read %ld", r);
    return NULL;
}

static void *co_writer(void *arg)
{
    (void)arg;
    long r;
    may_yield();
    if ((r = CK(may_write(fdp[1], "x", 1, DL_LONG))) < 0)
        return ERR(r);
    uint64_t one = 1;
    if ((r = CK(may_sleep(TEST_MS(1)))) < 0 || (r = CK(may_write(efd, &one, 8, DL_LONG))) < 0)
        return ERR(r);
    return NULL;
}

static long step_fd(void)
{
    long r = 0;
    if (pipe2(fdp, O_CLOEXEC) != 0)
        bad("pipe2: %s", strerror(errno));
    efd = (int)syscall(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        bad("eventfd: %s", strerror(errno));
    may_co_t *cos[2];
    int n = 0;
    if ((r = spawn_in(cos, &n, co_pipe_reader, NULL, NULL, "may_spawn(reader)")) < 0 ||
        (r = spawn_in(cos, &n, co_writer, NULL, NULL, "may_spawn(writer)")) < 0)
        goto out;
    /* This plain thread waits for the eventfd, in slices, until the writer
     * has written (or failed: then it stops). */
    while (!failed()) {
        r = may_fd_wait(efd, MAY_READ, may_deadline_in(TEST_MS(5)));
        if (r == -ETIMEDOUT)
            continue;
        if (ck("may_fd_wait(efd, MAY_READ) from a thread", r) < 0)
            break;
        uint64_t v;
        if (read(efd, &v, 8) != 8 || v != 1)
            bad("eventfd read");
        r = 0;
        break;
    }
    long j = join_group(cos, n);
    if (r >= 0)
        r = j;
out:
    may_fd_close(fdp[0]);
    may_fd_close(fdp[1]);
    may_fd_close(efd);
    return r;
}

/* ---- step: stream echo over TCP (loopback) and Unix sockets ------------- */

typedef struct {
    int lfd;
    int is_unix;
    _Atomic int server_ran; /* else the listener is step_stream's to close */
    char addr[108];
} stream_ctx;

#define STREAM_CLIENTS 2

/* Serves the clients one after the other, then closes the listener; on an
 * error it closes the listener at once, so a client still queued in its
 * backlog is reset instead of waiting for an echo. */
static void *co_stream_server(void *arg)
{
    stream_ctx *t = arg;
    atomic_store(&t->server_ran, 1);
    long r = 0;
    for (int k = 0; k < STREAM_CLIENTS && r == 0; k++) {
        struct sockaddr_storage peer;
        int cfd = t->is_unix ? (int)CK(may_unix_accept(t->lfd, MAY_FOREVER))
                             : (int)CK(may_tcp_accept(t->lfd, &peer, MAY_FOREVER));
        if (cfd < 0) {
            r = cfd;
            break;
        }
        char buf[64];
        for (;;) {
            r = CK(may_tcp_read(cfd, buf, sizeof buf, MAY_FOREVER));
            if (r <= 0)
                break;
            if ((r = CK(may_tcp_write_all(cfd, buf, (size_t)r, MAY_FOREVER))) < 0)
                break;
        }
        may_fd_close(cfd);
    }
    may_fd_close(t->lfd);
    return ERR(r < 0 ? r : 0);
}

static void *co_stream_client(void *arg)
{
    stream_ctx *t = arg;
    long r;
    int fd = t->is_unix ? (int)CK(may_unix_connect(t->addr, MAY_FOREVER))
                        : (int)CK(may_tcp_connect(t->addr, MAY_FOREVER));
    if (fd < 0)
        return ERR(fd);
    if (!t->is_unix && (r = CK(may_tcp_set_nodelay(fd, true))) < 0)
        goto out;
    for (int i = 0; i < 3; i++) {
        char msg[32], back[32];
        int len = snprintf(msg, sizeof msg, "message %d", i);
        if ((r = CK(may_tcp_write_all(fd, msg, (size_t)len, MAY_FOREVER))) < 0)
            goto out;
        if ((r = CK(may_tcp_read_full(fd, back, (size_t)len, MAY_FOREVER))) < 0)
            goto out;
        if (r != len || memcmp(msg, back, (size_t)len) != 0) {
            if (failed()) { /* the server failed and closed: clean */
                r = -ECONNRESET;
                goto out;
            }
            bad("echo %d: got %ld bytes", i, r);
        }
    }
    if ((r = CK(may_tcp_shutdown(fd, SHUT_WR))) == 0) {
        char c;
        r = CK(may_tcp_read(fd, &c, 1, MAY_FOREVER)); /* EOF */
    }
out:
    may_fd_close(fd);
    return ERR(r < 0 ? r : 0);
}

static long step_stream(int is_unix)
{
    stream_ctx t = { .is_unix = is_unix };
    long r;
    if (is_unix) {
        snprintf(t.addr, sizeof t.addr, "@may-test-fault-%d", (int)getpid());
        t.lfd = (int)CK(may_unix_listen(t.addr, 16));
    } else {
        t.lfd = (int)CK(may_tcp_listen(":0", 16, 0)); /* dual stack, or IPv4 */
    }
    if (t.lfd < 0)
        return t.lfd;
    if (!is_unix) {
        int port = (int)CK(may_tcp_local_port(t.lfd));
        if (port < 0) {
            may_fd_close(t.lfd);
            return port;
        }
        snprintf(t.addr, sizeof t.addr, "127.0.0.1:%d", port);
    }
    may_co_t *cos[1 + STREAM_CLIENTS];
    int n = 0;
    if ((r = spawn_in(cos, &n, co_stream_server, &t, NULL, "may_spawn(server)")) < 0) {
        may_fd_close(t.lfd);
        return r;
    }
    for (int i = 0; i < STREAM_CLIENTS; i++)
        if ((r = spawn_in(cos, &n, co_stream_client, &t, NULL, "may_spawn(client)")) < 0)
            break;
    if (r >= 0)
        r = join_group(cos, n);
    /* A group cancelled early (a client failed, or a spawn did) may have
     * cancelled the server before it ever ran: a coroutine cancelled before
     * it starts never runs its function, so nobody closed the listener. */
    if (!atomic_load(&t.server_ran))
        may_fd_close(t.lfd);
    return r;
}

static long step_tcp(void)
{
    return step_stream(0);
}

static long step_unix(void)
{
    return step_stream(1);
}

/* ---- step: a Unix socket pair and Unix datagrams ------------------------- */

typedef struct {
    int sv[2];
    int a, b; /* datagram: bound, unbound */
    char path[64];
} unix_ctx;

static void *co_pair_writer(void *arg)
{
    unix_ctx *u = arg;
    long r = CK(may_write(u->sv[0], "pair", 4, MAY_FOREVER));
    if (r < 0)
        return ERR(r);
    r = CK(may_unix_sendto(u->b, "dgram", 5, u->path, MAY_FOREVER));
    return ERR(r < 0 ? r : 0);
}

static void *co_pair_reader(void *arg)
{
    unix_ctx *u = arg;
    char buf[8], from[MAY_UNIX_ADDR_MAX];
    long r = CK(may_read(u->sv[1], buf, sizeof buf, MAY_FOREVER));
    if (r < 0)
        return ERR(r);
    if (r != 4 || memcmp(buf, "pair", 4) != 0)
        bad("socket pair: %ld bytes", r);
    r = CK(may_unix_recvfrom(u->a, buf, sizeof buf, from, sizeof from, MAY_FOREVER));
    if (r < 0)
        return ERR(r);
    if (r != 5 || memcmp(buf, "dgram", 5) != 0 || from[0] != '\0')
        bad("unix datagram: %ld bytes from \"%s\"", r, from);
    return NULL;
}

static long step_unix_dgram(void)
{
    unix_ctx u = { .sv = { -1, -1 }, .a = -1, .b = -1 };
    long r;
    snprintf(u.path, sizeof u.path, "@may-test-fault-d-%d", (int)getpid());
    if ((r = CK(may_unix_socketpair(SOCK_STREAM, u.sv))) < 0)
        goto out;
    if ((r = u.a = (int)CK(may_unix_dgram_bind(u.path))) < 0)
        goto out;
    if ((r = u.b = (int)CK(may_unix_dgram_socket())) < 0)
        goto out;
    may_co_t *cos[2];
    int n = 0;
    if ((r = spawn_in(cos, &n, co_pair_reader, &u, NULL, "may_spawn(pair reader)")) < 0 ||
        (r = spawn_in(cos, &n, co_pair_writer, &u, NULL, "may_spawn(pair writer)")) < 0)
        goto out;
    r = join_group(cos, n);
out:
    for (int i = 0; i < 2; i++)
        if (u.sv[i] >= 0)
            may_fd_close(u.sv[i]);
    if (u.a >= 0)
        may_fd_close(u.a);
    if (u.b >= 0)
        may_fd_close(u.b);
    return r;
}

/* ---- step: many coroutines at once --------------------------------------- */

/* More than a run queue holds (256: the rest overflows to the global queue)
 * and more timers than the heap's first allocation (256). */
#define N_MANY 300

static void *co_waiter(void *arg)
{
    /* raw: the spawner cancels these when it fails */
    return ERR(may_event_wait(arg, DL_LONG) == 0 ? 0 : -ECANCELED);
}

static void *co_spawner(void *arg)
{
    (void)arg;
    static may_co_t *many[N_MANY];
    may_event_t *go;
    long r = CK(may_event_new(&go));
    if (r < 0)
        return ERR(r);
    int n = 0;
    while (n < N_MANY && (r = CK(may_spawn(&many[n], co_waiter, go, NULL))) == 0)
        n++;
    /* Let them all arm their timers; then wake them (or, after an error,
     * cancel them). */
    for (int i = 0; i < 8; i++)
        may_yield();
    if (r < 0) {
        for (int i = 0; i < n; i++)
            may_cancel(many[i]);
    } else if (may_event_fire(go) != 0) {
        bad("may_event_fire");
    }
    for (int i = 0; i < n; i++) {
        void *v;
        int j = may_join(many[i], &v, MAY_FOREVER);
        if (j < 0)
            bad("may_join -> %d", j);
        if (r == 0 && v)
            bad("a waiter was cancelled or timed out");
    }
    may_event_free(go);
    return ERR(r);
}

static long step_many(void)
{
    may_co_t *cos[1];
    int n = 0;
    long r = spawn_in(cos, &n, co_spawner, NULL, NULL, "may_spawn(spawner)");
    return r < 0 ? r : join_group(cos, n);
}

/* ---- step: a UDP round trip ------------------------------------------- */

typedef struct {
    int a, b;
    struct sockaddr_in to;
} udp_ctx;

static void *co_udp_server(void *arg)
{
    udp_ctx *u = arg;
    char buf[16];
    struct sockaddr_storage from;
    socklen_t fl;
    long r = 0;
    for (int i = 0; i < 2 && r >= 0; i++) {
        r = CK(may_udp_recvfrom(u->a, buf, sizeof buf, &from, &fl, MAY_FOREVER));
        if (r >= 0)
            r = CK(may_udp_sendto(u->a, buf, (size_t)r, (struct sockaddr *)&from, fl,
                                  MAY_FOREVER));
    }
    return ERR(r < 0 ? r : 0);
}

static void *co_udp_client(void *arg)
{
    udp_ctx *u = arg;
    char buf[16];
    long r = CK(may_udp_sendto(u->b, "ping", 4, (struct sockaddr *)&u->to, sizeof u->to,
                               MAY_FOREVER));
    if (r < 0)
        return ERR(r);
    if ((r = CK(may_udp_recvfrom(u->b, buf, sizeof buf, NULL, NULL, MAY_FOREVER))) < 0)
        return ERR(r);
    if (r != 4 || memcmp(buf, "ping", 4) != 0)
        bad("udp echo: %ld bytes", r);
    /* once more on a connected socket */
    char peer[32];
    snprintf(peer, sizeof peer, "127.0.0.1:%d", ntohs(u->to.sin_port));
    if ((r = CK(may_udp_connect(u->b, peer))) < 0 ||
        (r = CK(may_udp_send(u->b, "pong", 4, MAY_FOREVER))) < 0 ||
        (r = CK(may_udp_recv(u->b, buf, sizeof buf, MAY_FOREVER))) < 0)
        return ERR(r);
    if (r != 4 || memcmp(buf, "pong", 4) != 0)
        bad("connected udp echo: %ld bytes", r);
    return NULL;
}

static long step_udp(void)
{
    udp_ctx u = { .a = -1, .b = -1 };
    long r;
    if ((r = u.a = (int)CK(may_udp_bind("127.0.0.1:0"))) < 0)
        goto out;
    if ((r = CK(may_tcp_local_port(u.a))) < 0)
        goto out;
    u.to = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)r),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if ((r = u.b = (int)CK(may_udp_socket(AF_INET))) < 0)
        goto out;
    may_co_t *cos[2];
    int n = 0;
    if ((r = spawn_in(cos, &n, co_udp_server, &u, NULL, "may_spawn(udp server)")) < 0 ||
        (r = spawn_in(cos, &n, co_udp_client, &u, NULL, "may_spawn(udp client)")) < 0)
        goto out;
    r = join_group(cos, n);
out:
    if (u.a >= 0)
        may_fd_close(u.a);
    if (u.b >= 0)
        may_fd_close(u.b);
    return r;
}

/* ---- step: offload, files, name resolution ------------------------------- */

static void *job_double(void *arg)
{
    return (void *)((intptr_t)arg * 2);
}

static void *co_file(void *arg)
{
    (void)arg;
    long r;
    int fd = (int)CK(may_file_open("/proc/self/exe", O_RDONLY | O_CLOEXEC, 0, MAY_FOREVER));
    if (fd < 0)
        return ERR(fd);
    char buf[4];
    r = CK(may_file_read(fd, buf, 4, 0, MAY_FOREVER));
    close(fd);
    if (r < 0)
        return ERR(r);
    if (r != 4 || memcmp(buf, ELFMAG, 4) != 0)
        bad("file read: %ld bytes", r);
    fd = (int)CK(may_file_open("/dev/null", O_WRONLY | O_CLOEXEC, 0, MAY_FOREVER));
    if (fd < 0)
        return ERR(fd);
    r = CK(may_file_write(fd, "x", 1, -1, MAY_FOREVER));
    close(fd);
    return ERR(r < 0 ? r : 0);
}

static void *co_resolve(void *arg)
{
    (void)arg;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    long r = CK(may_resolve("localhost", "80", AF_INET, SOCK_STREAM, &ss, &len, MAY_FOREVER));
    if (r < 0)
        return ERR(r);
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
    if (ss.ss_family != AF_INET || ntohs(s4->sin_port) != 80 ||
        (ntohl(s4->sin_addr.s_addr) >> 24) != 127)
        bad("localhost resolved to something else");
    return NULL;
}

static void *job_sleep(void *arg)
{
    usleep((useconds_t)(intptr_t)arg);
    return arg;
}

/* may_offload_ex: every call that does not return 0 ends with one drop. */
static _Atomic int n_drops, n_not_ok;

static void drop_count(void *arg, void *result, bool ran)
{
    (void)arg;
    (void)result;
    (void)ran;
    atomic_fetch_add(&n_drops, 1);
}

/* Several at once: more helper threads start while others run. */
static void *co_offload(void *arg)
{
    void *res;
    long r = CK(may_offload(job_sleep, arg, &res, MAY_FOREVER));
    if (r == 0 && res != arg)
        bad("may_offload gave %p", res);
    return ERR(r);
}

/* A deadline shorter than the job: the call is abandoned (or never ran). */
static void *co_abandon(void *arg)
{
    (void)arg;
    int r = may_offload_ex(job_sleep, (void *)20000, NULL, drop_count,
                           may_deadline_in(TEST_MS(1)));
    if (r != 0)
        atomic_fetch_add(&n_not_ok, 1);
    if (r == 0 || r == -ETIMEDOUT) /* 0: this coroutine was slower than the job */
        return NULL;
    return ERR(ck("may_offload_ex(20 ms job, 1 ms deadline)", r));
}

static long step_offload(void)
{
    void *res;
    long r = CK(may_offload(job_double, (void *)21, &res, DL_LONG));
    if (r < 0)
        return r;
    if ((intptr_t)res != 42)
        bad("may_offload gave %p", res);
    may_co_t *cos[7];
    int n = 0;
    if ((r = spawn_in(cos, &n, co_file, NULL, NULL, "may_spawn(file)")) < 0 ||
        (r = spawn_in(cos, &n, co_resolve, NULL, NULL, "may_spawn(resolve)")) < 0 ||
        (r = spawn_in(cos, &n, co_abandon, NULL, NULL, "may_spawn(abandon)")) < 0)
        return r;
    for (intptr_t i = 0; i < 4; i++)
        if ((r = spawn_in(cos, &n, co_offload, (void *)(2000 + i), NULL,
                          "may_spawn(offload)")) < 0)
            return r;
    return join_group(cos, n);
}

/* ---- the child ----------------------------------------------------------- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static const struct {
    const char *name;
    long (*fn)(void);
} steps[] = {
    { "spawn", step_spawn }, { "sync", step_sync },         { "chan", step_chan },
    { "timers", step_timers }, { "many", step_many },       { "fd", step_fd },
    { "tcp", step_tcp },     { "unix", step_unix },         { "unix_dgram", step_unix_dgram },
    { "udp", step_udp },     { "offload", step_offload },
};

/* The workload once: start, every step until one fails, shutdown.  The
 * first error, or 0. */
static long workload(void)
{
    cur_step = "start";
    /* dense stacks (custom sizes are still guarded mappings), and small
     * worker pools, so that stacks go through the global pool too */
    may_config_t cfg = { .workers = 2, .stack_mode = MAY_STACK_DENSE, .stack_pool = 8 };
    if (CK(may_configure(&cfg)) < 0)
        bad("may_configure failed");
    long r = CK(may_start());
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && r == 0; i++) {
        cur_step = steps[i].name;
        r = steps[i].fn();
        if (r == 0 && failed())
            bad("an error was reported, but the step went on");
    }
    cur_step = "shutdown";
    /* A detached coroutine may still be between its last call and its
     * end: -EBUSY for a moment is fine, for a second it is a leak. */
    int s;
    for (int i = 0; (s = may_shutdown()) == -EBUSY && i < 1000; i++)
        usleep(1000);
    if (s != 0)
        bad("may_shutdown -> %d", s);
    may_event_free(detached_ev); /* every coroutine has ended */
    detached_ev = NULL;
    if (r != 0 && !failed())
        bad("the workload stopped with %ld, reported by nobody", r);
    /* may_shutdown waited for the abandoned offload calls */
    if (atomic_load(&n_drops) != atomic_load(&n_not_ok))
        bad("%d may_offload_ex calls failed, %d drops ran", atomic_load(&n_not_ok),
            atomic_load(&n_drops));
    return r;
}

/* Phase 1 runs the workload with the fault armed: the fail_n-th call from
 * the site before return address ra fails (ra 0: none; the call sites and
 * their counts are reported).  Phase 2 runs it again without faults: it
 * must complete, so the failure left nothing behind that breaks a later
 * start (a leaked pool slot, a stale registration, a half-made runtime). */
static _Noreturn void run_child(uintptr_t ra, long n)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    fail_ra = ra;
    fail_n = n;
    int fds0 = count_fds();
    atomic_store(&armed, 1);
    long r = workload();
    atomic_store(&armed, 0);
    int fds1 = count_fds();
    if (fds1 != fds0)
        bad("%d descriptors open before, %d after", fds0, fds1);
    if (ra && !atomic_load(&fired) && r != 0)
        bad("no fault fired, yet the workload failed");
    for (size_t i = 0; i < NSITES; i++)
        if (atomic_load(&sites[i].ra))
            printf("SITE %d %lx %ld\n", atomic_load(&sites[i].fn),
                   (unsigned long)atomic_load(&sites[i].ra), atomic_load(&sites[i].n));
    long e = atomic_load(&first_err);
    const char *call = e ? atomic_load(&first_call) : "-";

    printf("phase 2: the workload again, without a fault\n");
    atomic_store(&first_err, 0);
    if (workload() != 0)
        bad("the workload fails after a fault that was recovered from");
    if (count_fds() != fds0)
        bad("%d descriptors open before, %d after the second run", fds0, count_fds());
    printf("RESULT %s %ld %s\n", atomic_load(&fired) ? "fired" : "unfired", e, call);
    free(syms);
    free(elf_img);
    exit(0);
}

/* ------------------------------------------------------------------------ */
/* The driver                                                               */
/* ------------------------------------------------------------------------ */

/* A point: the n-th call from one call site. */
typedef struct {
    int fn;
    uintptr_t ra;
    long n;
} point;

typedef struct {
    point pt;
    pid_t pid;
    int fd;           /* the child's stdout and stderr */
    int64_t start;
    char *out;        /* everything it wrote */
    size_t len, cap;
    int status, timed_out;
} child;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void child_start(child *c, point pt)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        bad("pipe2: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        bad("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        run_child(pt.ra, pt.n);
    }
    close(p[1]);
    *c = (child){ .pt = pt, .pid = pid, .fd = p[0], .start = now_ns() };
}

static void child_append(child *c, const char *s, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        c->cap = (c->len + n + 1) * 2;
        c->out = realloc(c->out, c->cap);
        ASSERT(c->out);
    }
    memcpy(c->out + c->len, s, n);
    c->len += n;
    c->out[c->len] = 0;
}

/* Run the points, up to jobs children at a time, each killed after
 * timeout_s; done(c) sees each child as it ends. */
static void run_children(const point *pts, size_t npts, int jobs, int timeout_s,
                         void (*done)(child *c))
{
    child *run = calloc((size_t)jobs, sizeof *run);
    ASSERT(run);
    size_t next = 0;
    int active = 0;
    while (next < npts || active) {
        for (int i = 0; i < jobs && next < npts; i++) {
            if (run[i].pid)
                continue;
            child_start(&run[i], pts[next++]);
            active++;
        }
        struct pollfd pf[64];
        int idx[64], k = 0;
        for (int i = 0; i < jobs; i++)
            if (run[i].pid && run[i].fd >= 0) {
                pf[k] = (struct pollfd){ .fd = run[i].fd, .events = POLLIN };
                idx[k++] = i;
            }
        poll(pf, (nfds_t)k, 20);
        for (int j = 0; j < k; j++) {
            if (!pf[j].revents)
                continue;
            child *c = &run[idx[j]];
            char buf[4096];
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r > 0) {
                child_append(c, buf, (size_t)r);
            } else if (r == 0 || errno != EINTR) {
                close(c->fd);
                c->fd = -1;
            }
        }
        for (int i = 0; i < jobs; i++) {
            child *c = &run[i];
            if (!c->pid)
                continue;
            if (!c->timed_out && now_ns() - c->start > (int64_t)timeout_s * 1000000000) {
                c->timed_out = 1;
                kill(c->pid, SIGKILL);
            }
            if (c->fd >= 0)
                continue; /* read everything first */
            int st;
            pid_t w = waitpid(c->pid, &st, c->timed_out ? 0 : WNOHANG);
            if (w == 0)
                continue;
            c->status = st;
            done(c);
            free(c->out);
            *c = (child){ 0 };
            active--;
        }
    }
    free(run);
}

/* ---- the walk ------------------------------------------------------------ */

#define SITE_ALL 16
#define SITE_MORE 8

static point base_sites[NSITES]; /* n: the most calls seen from the site */
static size_t n_base_sites;
static int base_failed;
static int verbose;
static long n_points, n_fired, n_clean, n_absorbed, n_unfired, n_xfail, n_xpass, n_bad;

static const char *line_after(const char *out, const char *tag)
{
    const char *p = out;
    size_t tl = strlen(tag);
    while (p && *p) {
        if (strncmp(p, tag, tl) == 0)
            return p + tl;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

static void print_out(const child *c)
{
    const char *p = c->out ? c->out : "";
    while (*p) {
        const char *e = strchr(p, '\n');
        int len = e ? (int)(e - p) : (int)strlen(p);
        if (strncmp(p, "SITE ", 5) != 0)
            printf("      | %.*s\n", len, p);
        p += len + (e != NULL);
    }
}

/* How a child ended: NULL when it passed, else why not. */
static const char *verdict(const child *c, char *buf, size_t bufsz)
{
    if (c->timed_out)
        return "hang (killed after the timeout)";
    if (WIFSIGNALED(c->status)) {
        snprintf(buf, bufsz, "killed by signal %d (%s)", WTERMSIG(c->status),
                 strsignal(WTERMSIG(c->status)));
        return buf;
    }
    if (WEXITSTATUS(c->status) != 0) {
        snprintf(buf, bufsz, "exit status %d%s", WEXITSTATUS(c->status),
                 c->out && strstr(c->out, "LeakSanitizer") ? " (leaks)" : "");
        return buf;
    }
    if (!c->out || !line_after(c->out, "RESULT "))
        return "no RESULT line";
    return NULL;
}

static void base_done(child *c)
{
    char buf[128];
    const char *why = verdict(c, buf, sizeof buf);
    const char *res = c->out ? line_after(c->out, "RESULT ") : NULL;
    if (why || !res || strncmp(res, "unfired 0 ", 10) != 0) {
        printf("the workload fails without any fault: %s\n", why ? why : "an error");
        print_out(c);
        base_failed = 1;
        return;
    }
    for (const char *p = c->out; (p = line_after(p, "SITE "));) {
        int fn;
        unsigned long ra;
        long n;
        if (sscanf(p, "%d %lx %ld", &fn, &ra, &n) != 3 || fn < 0 || fn >= NFUNCS)
            continue;
        size_t i = 0;
        while (i < n_base_sites && base_sites[i].ra != ra)
            i++;
        if (i == n_base_sites) {
            if (n_base_sites == NSITES)
                continue;
            base_sites[n_base_sites++] = (point){ fn, ra, 0 };
        }
        if (n > base_sites[i].n)
            base_sites[i].n = n;
    }
}

static int point_cmp(const void *a, const void *b)
{
    const point *x = a, *y = b;
    if (x->fn != y->fn)
        return x->fn - y->fn;
    return x->ra < y->ra ? -1 : x->ra > y->ra;
}

static void point_done(child *c)
{
    char buf[160], where[128];
    const char *why = verdict(c, buf, sizeof buf);
    const fsym *fs = sym_of(c->pt.ra - 1);
    site_name(c->pt.ra, where, sizeof where);
    const char *fl = c->out ? line_after(c->out, "FIRED ") : NULL;
    const char *res = c->out ? line_after(c->out, "RESULT ") : NULL;
    long err = 0;
    char call[160] = "-";
    if (res) {
        const char *sp = strchr(res, ' ');
        err = sp ? atol(sp + 1) : 0;
        const char *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
        if (sp2) {
            const char *e = strchr(sp2 + 1, '\n');
            snprintf(call, sizeof call, "%.*s", e ? (int)(e - sp2 - 1) : 60, sp2 + 1);
        }
    }
    if (!why && err) {
        int ok = err == -fn_errno[c->pt.fn];
        for (size_t i = 0; i < sizeof clear / sizeof clear[0]; i++)
            if (clear[i].fn == c->pt.fn && err == -clear[i].err)
                ok = 1;
        if (!ok) {
            snprintf(buf, sizeof buf, "unclear error: %s for an injected %s",
                     strerror((int)-err), strerror(fn_errno[c->pt.fn]));
            why = buf;
        }
    }
    const char *fix = NULL;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i].fn == c->pt.fn && fs && strcmp(known[i].site, fs->name) == 0)
            fix = known[i].fix;
    n_points++;
    char label[64];
    snprintf(label, sizeof label, "%s#%ld", fn_name[c->pt.fn], c->pt.n);
    if (why) {
        if (fix && fl) {
            n_xfail++;
            printf("  XFAIL %-20s at %-30s %s\n        known: %s\n", label, where, why, fix);
        } else {
            n_bad++;
            printf("  FAIL  %-20s at %-30s %s\n", label, where, why);
            print_out(c);
        }
        return;
    }
    if (!fl) {
        n_unfired++;
        printf("  -     %-20s at %-30s not reached this time\n", label, where);
        return;
    }
    if (fix) {
        n_xpass++;
        printf("  XPASS %-20s at %-30s (the known entry is stale?)\n", label, where);
    }
    n_fired++;
    if (err) {
        n_clean++;
        printf("  ok    %-20s at %-30s -> %s: %s\n", label, where, call, strerror((int)-err));
    } else {
        n_absorbed++;
        printf("  ok    %-20s at %-30s -> absorbed, the workload completed\n", label, where);
    }
    if (verbose)
        print_out(c);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (load_symbols() != 0) {
        printf("test_fault: no symbol table in /proc/self/exe (stripped?): skipped\n");
        return 0;
    }
    size_t nlib = 0;
    for (size_t i = 0; i < nsyms; i++)
        nlib += syms[i].lib;
    ASSERT_GT(nlib, 50); /* libmay's functions were found */

    const char *e;
    int jobs = (e = getenv("FAULT_JOBS")) ? atoi(e) : 2;
    int timeout_s = (e = getenv("FAULT_TIMEOUT")) ? atoi(e) : 30;
    if (jobs < 1 || jobs > 64)
        jobs = 2;
    if (timeout_s < 1)
        timeout_s = 30;
    const char *only = getenv("FAULT_ONLY");
    int all = (e = getenv("FAULT_ALL")) && atoi(e) > 0;
    verbose = only != NULL;
    int64_t t0 = now_ns();

    /* The call sites and their counts: two runs without a fault, the larger
     * count wins (threads make the counts vary a little). */
    point base[2] = { { -1, 0, 0 }, { -1, 0, 0 } };
    run_children(base, 2, jobs, timeout_s, base_done);
    ASSERT_EQ(base_failed, 0);
    qsort(base_sites, n_base_sites, sizeof *base_sites, point_cmp);
    long total = 0, per_fn[NFUNCS] = { 0 };
    for (size_t i = 0; i < n_base_sites; i++) {
        per_fn[base_sites[i].fn] += base_sites[i].n;
        total += base_sites[i].n;
    }
    printf("libmay's calls in one run of the workload, %zu sites:", n_base_sites);
    for (int f = 0; f < NFUNCS; f++)
        printf(" %s %ld", fn_name[f], per_fn[f]);
    printf(" (%ld in all)\n", total);
    ASSERT_GT(total, 0);

    /* The points: every call of every site, or an even sample of them. */
    point *pts = calloc((size_t)total, sizeof *pts);
    ASSERT(pts);
    size_t np = 0;
    for (size_t i = 0; i < n_base_sites; i++) {
        const point *b = &base_sites[i];
        if (only) {
            size_t l = strcspn(only, ":");
            if (strlen(fn_name[b->fn]) != l || strncmp(fn_name[b->fn], only, l) != 0)
                continue;
        }
        for (long n = 1; n <= b->n; n++) {
            if (only && strchr(only, ':') && atol(strchr(only, ':') + 1) != n)
                continue;
            /* A site called many times (a stack per coroutine of N_MANY)
             * gives the same result for most N: the first SITE_ALL calls,
             * then SITE_MORE evenly spaced ones and the last, unless
             * FAULT_ALL=1. */
            if (!all && n > SITE_ALL && n != b->n &&
                (n - SITE_ALL) % ((b->n - SITE_ALL) / SITE_MORE + 1) != 0)
                continue;
            pts[np++] = (point){ b->fn, b->ra, n };
        }
    }
    size_t want = np;
    if ((e = getenv("FAULT_POINTS")))
        want = (size_t)atol(e);
    else if (test_scale_factor() < 0.1)
        want = (size_t)((double)np * test_scale_factor() * 10);
    if (want < 1)
        want = 1;
    if (want < np) {
        for (size_t i = 0; i < want; i++) /* evenly spaced, deterministic */
            pts[i] = pts[i * np / want];
        printf("walking %zu of %zu points (MAY_TEST_SCALE / FAULT_POINTS)\n", want, np);
        np = want;
    }
    run_children(pts, np, jobs, timeout_s, point_done);

    double secs = (double)(now_ns() - t0) / 1e9;
    printf("test_fault: %ld points in %.1f s: %ld faults fired (%ld clean errors, %ld absorbed), "
           "%ld not reached, %ld known failures (XFAIL), %ld stale known entries (XPASS), "
           "%ld FAILED\n",
           n_points, secs, n_fired, n_clean, n_absorbed, n_unfired, n_xfail, n_xpass, n_bad);
    free(pts);
    free(syms);
    free(elf_img);
    return n_bad ? 1 : 0;
}
