/*
 * may.h - stackful coroutines on an M:N work-stealing scheduler.
 *
 * This header is the whole public contract of libmay.
 *
 * Errors: every function that can fail returns a negative errno value
 * (-EINVAL, -ETIMEDOUT, -ECANCELED, ...) and never sets or relies on errno,
 * because a coroutine may resume on another OS thread after any blocking call.
 * Zero or a documented non-negative value means success.
 *
 * Deadlines: every blocking call takes an absolute deadline in nanoseconds on
 * the monotonic clock (see may_now()).  MAY_FOREVER (-1) means no deadline,
 * MAY_NOWAIT (0) means "do not wait".  Cancellation takes priority over a
 * deadline (see Cancellation).
 *
 * Cancellation: may_cancel marks a coroutine cancelled for good, and from
 * then on every blocking call it makes (and the one it is in) follows one
 * contract, which every section below refers to:
 *   - A call that can complete without waiting completes, as it would
 *     uncancelled, so cleanup code can still take a lock or drain a
 *     channel: it locks a free mutex, takes a semaphore unit, receives a
 *     buffered value or sends into room, passes a fired event, a zero wait
 *     group, a ready select case or a ready fd, and joins a coroutine that
 *     has ended.
 *   - A call that would have to wait fails with -ECANCELED at once,
 *     whatever its deadline (MAY_FOREVER, a future one, one already passed,
 *     MAY_NOWAIT), and leaves the object as if it had never waited.
 *   - may_sleep, may_sleep_until and may_park do nothing but wait: they
 *     always fail with -ECANCELED.
 *   - The exception: may_once waits regardless (see there).
 * A plain thread cannot be cancelled.  tests/test_cancel.c checks each kind
 * of call against this.
 *
 * Options structs may grow at the end in later versions: initialise them with
 * a designated initialiser ({ .name = "x" }) so new fields start at zero.
 * The calls that take one (may_configure, may_spawn, may_scope_spawn,
 * may_stats) are macros that pass the size of the struct the program was
 * compiled with to a "_sized" entry point, as Linux's clone3 and openat2
 * take a size: a program built against an older, smaller struct keeps
 * working with a newer shared library (which reads or writes only that many
 * bytes and takes the fields the program does not know as zero), and one
 * built against a newer header than the library's gets -E2BIG if it sets a
 * field the library does not know (non-zero bytes past the library's
 * size), or -EINVAL for a size below the first version's.  The _sized
 * functions are public and stable; bindings from other languages call them.
 *
 * Everything here may be called from a coroutine or from a plain thread (the
 * program's main thread or one the user made) unless the comment says
 * otherwise.  Called from a plain thread, a blocking call blocks that thread.
 */
#ifndef MAY_H
#define MAY_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported names.  On Windows (MinGW or clang targeting it) the DLL exports
 * exactly the MAY_API functions (CMakeLists.txt defines MAY_DLL while
 * building it); a program links them through the import library, which
 * needs no attribute on a function.  Elsewhere the library is built with
 * -fvisibility=hidden and MAY_API is what stays visible. */
#if defined(_WIN32)
#if defined(MAY_DLL)
#define MAY_API __declspec(dllexport)
#else
#define MAY_API
#endif
#elif defined(MAY_BUILDING) && defined(__GNUC__)
#define MAY_API __attribute__((visibility("default")))
#else
#define MAY_API
#endif

#define MAY_VERSION_MAJOR 0
#define MAY_VERSION_MINOR 1
#define MAY_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Time                                                                     */
/* ------------------------------------------------------------------------ */

#define MAY_FOREVER ((int64_t)-1) /* deadline: wait as long as it takes */
#define MAY_NOWAIT ((int64_t)0)   /* deadline: do not wait at all */

/* Nanoseconds on the monotonic clock (CLOCK_MONOTONIC). */
MAY_API int64_t may_now(void);
/* may_now() + ns, saturating; a negative ns gives MAY_FOREVER. */
MAY_API int64_t may_deadline_in(int64_t ns);

/* ------------------------------------------------------------------------ */
/* Runtime                                                                  */
/* ------------------------------------------------------------------------ */

/* Stack modes, see docs/ARCHITECTURE.md "Stacks".  */
enum {
    MAY_STACK_AUTO = 0,  /* guard pages while mappings allow, then dense slabs */
    MAY_STACK_GUARD = 1, /* always a PROT_NONE guard page (one mmap each) */
    MAY_STACK_DENSE = 2, /* always dense slabs with a checked soft guard */
};

typedef struct may_config {
    int workers;          /* worker threads; 0: $MAY_WORKERS, else the CPUs
                             this process may use (sched_getaffinity) */
    size_t stack_size;    /* default stack size in bytes; 0: 64 KiB */
    size_t stack_pool;    /* stacks kept for reuse per worker; 0: 256 */
    int stack_mode;       /* MAY_STACK_AUTO / _GUARD / _DENSE */
    bool pin_workers;     /* pin worker i to the i-th allowed CPU */
    bool track_stack;     /* record every coroutine's peak stack use */
    /* -- added in 0.2 (the struct grows at its end only) -- */
    bool no_handoff;      /* do not hand a blocked worker's queue and place
                             to another thread (docs/CAVEATS.md rule 1);
                             also $MAY_HANDOFF=0 */
    int max_threads;      /* worker threads in all, spares for blocked ones
                             included; 0: 10000 (Go's limit); at least
                             .workers */
    int spare_idle_ms;    /* a spare thread made for a blocked worker ends
                             after this long with nothing to do; 0: 10000,
                             -1: never */
    /* -- added in 0.3 -- */
    int idle_spin_us;     /* an idle worker spins at most this long for work
                             before it sleeps (adaptive, from 2 us up); 0:
                             $MAY_IDLE_SPIN_US, else 50; -1: never spin.
                             Less spin leaves more CPU to a server (a
                             database) on the same cores */
} may_config_t;

/* Set the configuration.  Only before the runtime has started (it starts
 * lazily on first use); -EBUSY afterwards, -EINVAL for bad values. */
MAY_API int may_configure_sized(const may_config_t *cfg, size_t size);
/* (variadic so that a compound literal's commas pass through) */
#define may_configure(...) may_configure_sized((__VA_ARGS__), sizeof(may_config_t))
/* Start the runtime now (otherwise the first spawn does).  0 or -errno. */
MAY_API int may_start(void);
/* Stop the worker threads and free every cached resource.  -EBUSY while
 * coroutines are alive (joined or detached ones that have not ended).  The
 * runtime starts again lazily on next use.  Armed timers and tickers and
 * contexts' deadlines are stopped (reset them to arm them again).  Not from
 * a coroutine (-EPERM). */
MAY_API int may_shutdown(void);
/* Number of worker threads (starts the runtime). */
MAY_API int may_workers(void);
/* Index of the worker running the caller, or -1 on a plain thread.  The
 * first may_workers() are the runtime's own; spare threads that stand in
 * for blocked ones (docs/CAVEATS.md rule 1) have the indices after them. */
MAY_API int may_worker_id(void);

/* Fork.  The child of a fork(2) made while the runtime runs has only the
 * thread that called fork, and should only exec or _exit (POSIX's rule for
 * a multithreaded process).  libmay keeps that path safe and refuses the
 * rest loudly: in the child the caller is a plain thread (after a fork
 * inside a coroutine too: may_self() is NULL, and that coroutine's function
 * must not return), the runtime's global locks are free, and every call
 * that needs the runtime fails with -ENOTRECOVERABLE, for good: may_start,
 * may_spawn, may_go (may_workers returns 0), may_join and may_scope_wait
 * of a coroutine that has not ended, and the fd, TCP, UDP and Unix-socket
 * calls.  What needs no runtime still works: time, generators,
 * coroutine-local storage, may_sleep, and sync objects and channels that
 * no other thread was using at the fork; may_shutdown returns 0.  Close
 * inherited descriptors with close(2).  A fork while the runtime is not
 * running (not yet started, or after may_shutdown) is not special: the
 * child may start its own.  docs/CAVEATS.md, "Fork". */

/* ------------------------------------------------------------------------ */
/* Coroutines                                                               */
/* ------------------------------------------------------------------------ */

typedef struct may_co may_co_t;      /* opaque coroutine handle */
typedef void *(*may_fn_t)(void *arg); /* entry: its result is join's result */

enum {
    MAY_SPAWN_DETACHED = 1 << 0, /* no join; resources freed at its end */
    MAY_SPAWN_WORKER = 1 << 1,   /* start on worker .worker (other workers
                                    may steal it when it is busy) */
    MAY_SPAWN_PINNED = 1 << 2,   /* run only on worker .worker, never stolen;
                                    for code that relies on thread-locals */
    MAY_SPAWN_TRACK_STACK = 1 << 3, /* record this coroutine's peak stack use
                                       (as config .track_stack does for all) */
    MAY_SPAWN_NO_CTX = 1 << 4, /* under no context, even if the spawner is */
};

typedef struct may_ctx may_ctx_t; /* a context (see "Contexts") */

typedef struct may_spawn_opts {
    const char *name;  /* copied; at most 31 bytes kept; NULL: no name */
    size_t stack_size; /* 0: the configured default */
    int worker;        /* with MAY_SPAWN_WORKER / MAY_SPAWN_PINNED */
    unsigned flags;    /* MAY_SPAWN_* */
    /* -- added in 0.4 -- */
    may_ctx_t *ctx;    /* the context it runs under (see "Contexts");
                          NULL: the spawner's, if the spawner is a
                          coroutine under one (MAY_SPAWN_NO_CTX: none) */
} may_spawn_opts_t;

/* Spawn a coroutine running fn(arg).  *co receives the handle (may be NULL
 * when MAY_SPAWN_DETACHED).  0, -EINVAL, -ENOMEM, or -ENOTRECOVERABLE (in
 * the child of a fork, see "Fork"). */
MAY_API int may_spawn_sized(may_co_t **co, may_fn_t fn, void *arg,
                            const may_spawn_opts_t *opts, size_t opts_size);
#define may_spawn(co, fn, arg, ...) \
    may_spawn_sized((co), (fn), (arg), (__VA_ARGS__), sizeof(may_spawn_opts_t))
/* The short form, like Go's `go f(x)`: spawn detached with defaults. */
MAY_API int may_go(may_fn_t fn, void *arg);

/* How a joined coroutine ended: non-negative results of may_join. */
enum {
    MAY_DONE = 0,     /* returned (or called may_exit); *result is its value */
    MAY_CANCELED = 1, /* was cancelled; *result is what it returned, or NULL
                         when it was cancelled before it started */
    MAY_PANICKED = 2, /* ended through may_panic; *result is NULL */
};

/* Wait for co to end and release the handle.  Returns MAY_DONE,
 * MAY_CANCELED or MAY_PANICKED (the handle is gone), or without releasing
 * it: -ETIMEDOUT (deadline passed), -ECANCELED (the *caller* was cancelled),
 * -EINVAL (NULL, detached, or already being joined), -EDEADLK (joining
 * itself), -ENOTRECOVERABLE (it has not ended, and the caller is the child
 * of a fork: see "Fork").  result may be NULL. */
MAY_API int may_join(may_co_t *co, void **result, int64_t deadline);
/* Let co free itself when it ends; the handle must not be used after. */
MAY_API int may_detach(may_co_t *co);

/* Ask co to stop: the wait it is in and every later one fails with
 * -ECANCELED, while calls that need not wait still complete (see
 * Cancellation at the top).  If it has not started yet it never runs.
 * Cancelling a finished or already cancelled coroutine does nothing.
 * Children in scopes that co owns are cancelled too.  0 or -EINVAL. */
MAY_API int may_cancel(may_co_t *co);
/* True when the calling coroutine has been cancelled. */
MAY_API bool may_cancelled(void);

/* Keep the calling coroutine on the OS thread it runs on now until the
 * matching may_unlock_thread, as Go's runtime.LockOSThread: across every
 * wait in between it resumes on that thread, so its thread-locals, &errno
 * and pthread_self() stay the same.  Calls nest; a coroutine spawned with
 * MAY_SPAWN_PINNED is locked for life already.  Cheap (no system call):
 * the interposition library (docs/HOOKS.md) brackets every wait with it.
 * 0, or -EPERM on a plain thread. */
MAY_API int may_lock_thread(void);
/* Undo one may_lock_thread.  0, -EPERM (plain thread, or not locked). */
MAY_API int may_unlock_thread(void);

/* Bracket a call that may block the thread in the kernel (a blocking
 * read of a regular file, a third-party library's wait), as Go's
 * entersyscall/exitsyscall or tokio's block_in_place: while the call lasts
 * the worker's queued coroutines are handed to another thread, so the
 * runtime keeps its full number of workers running (docs/CAVEATS.md rule
 * 1).  Cheap when the call is short.  In between, call no may_ function
 * that waits.  Nested pairs count as one.  Neither switches: errno and
 * thread-locals read after may_blocking_end are still the call's.  On a
 * plain thread both do nothing. */
MAY_API void may_blocking_begin(void);
MAY_API void may_blocking_end(void);

/* Let other coroutines run; from a plain thread, sched_yield(). */
MAY_API void may_yield(void);
/* Sleep until the deadline.  0, or -ECANCELED; -EINVAL on a plain thread
 * for MAY_FOREVER (or any negative deadline): nothing can cancel a thread's
 * sleep, so it would never return. */
MAY_API int may_sleep_until(int64_t deadline);
/* Sleep for ns nanoseconds.  0, or -ECANCELED. */
MAY_API int may_sleep(int64_t ns);

/* Park the caller until may_unpark, the deadline or cancellation.  Token
 * semantics: an unpark that came before the park makes it return at once
 * (tokens do not accumulate).  0, -ETIMEDOUT or -ECANCELED; -EPERM from a
 * plain thread, which has no handle anyone could unpark. */
MAY_API int may_park(int64_t deadline);
/* Give co its token (waking it if parked). */
MAY_API void may_unpark(may_co_t *co);

/* The calling coroutine, or NULL on a plain thread. */
MAY_API may_co_t *may_self(void);
MAY_API bool may_in_coroutine(void);
/* Unique id (> 0) and name ("" if none) of a coroutine. */
MAY_API uint64_t may_co_id(const may_co_t *co);
MAY_API const char *may_co_name(const may_co_t *co);
/* Bytes of stack co has used at most (so far, or at its end); needs
 * config .track_stack or MAY_SPAWN_TRACK_STACK (else -ENOTSUP); -EINVAL for
 * NULL.  A tracked coroutine also prints "stack size = ..., used size = ..."
 * on stderr when it ends.  See docs/STACK.md. */
MAY_API long may_co_stack_used(const may_co_t *co);

/* ------------------------------------------------------------------------ */
/* Ending a coroutine from any depth                                        */
/* ------------------------------------------------------------------------ */

/* End the calling coroutine with result, after running its cleanup
 * handlers and coroutine-local destructors.  On a plain thread: run the
 * thread's may_cleanup_push handlers, then pthread_exit(result). */
MAY_API _Noreturn void may_exit(void *result);
/* Print "may: coroutine <id> "<name>" panicked: <message>" on stderr and end
 * the calling coroutine (cleanup handlers and destructors run; every other
 * coroutine runs on; join reports MAY_PANICKED).  On a plain thread: print
 * and abort(). */
MAY_API _Noreturn void may_panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Cleanup handlers, like pthread_cleanup_push/pop: run in LIFO order by
 * may_exit, may_panic and a normal return.  The node lives in the caller's
 * frame; pushes and pops must pair in one function.  Inside a generator
 * they are the generator's own: see may_gen_free. */
typedef struct may_cleanup {
    void (*fn)(void *arg);
    void *arg;
    struct may_cleanup *next;
} may_cleanup_t;
MAY_API void may_cleanup_push(may_cleanup_t *node, void (*fn)(void *),
                              void *arg);
/* Remove the latest handler and run it if execute is true. */
MAY_API void may_cleanup_pop(bool execute);

/* ------------------------------------------------------------------------ */
/* Coroutine-local storage                                                  */
/* ------------------------------------------------------------------------ */

/* A key names one slot in every coroutine (and, from plain threads, in
 * every thread).  Each coroutine starts with NULL in every slot; at its end
 * the destructor runs on non-NULL values. */
typedef unsigned may_key_t;
#define MAY_KEYS_MAX 128
MAY_API int may_key_create(may_key_t *key, void (*destructor)(void *));
MAY_API int may_key_delete(may_key_t key);
MAY_API void *may_getspecific(may_key_t key);
MAY_API int may_setspecific(may_key_t key, const void *value);

/* ------------------------------------------------------------------------ */
/* Scopes: structured concurrency                                           */
/* ------------------------------------------------------------------------ */

/* A scope owns the coroutines spawned into it; its owner is the coroutine
 * (or thread) that made it.  Cancelling the owner cancels the children. */
typedef struct may_scope may_scope_t;
MAY_API int may_scope_new(may_scope_t **scope);
MAY_API int may_scope_spawn_sized(may_scope_t *scope, may_fn_t fn, void *arg,
                                  const may_spawn_opts_t *opts, size_t opts_size);
/* Spawn a child into scope (not MAY_SPAWN_DETACHED): as may_spawn, and
 * -ECANCELED when the scope's owner has been cancelled (the child would be
 * cancelled before it started). */
#define may_scope_spawn(scope, fn, arg, ...) \
    may_scope_spawn_sized((scope), (fn), (arg), (__VA_ARGS__), sizeof(may_spawn_opts_t))
/* Join every child spawned so far.  Returns the number of children that
 * panicked (0: all ended normally or by cancellation), -ETIMEDOUT (the
 * children not yet joined stay in the scope), or -ECANCELED when the owner
 * was cancelled: then the children are cancelled and still joined (the
 * deadline still applies) so none outlives the call. */
MAY_API int may_scope_wait(may_scope_t *scope, int64_t deadline);
/* Cancel and join the remaining children, then free the scope. */
MAY_API void may_scope_free(may_scope_t *scope);

/* ------------------------------------------------------------------------ */
/* Generators                                                               */
/* ------------------------------------------------------------------------ */

/* An asymmetric coroutine that runs on its caller's thread (or inside its
 * calling coroutine) and yields values back one at a time. */
typedef struct may_gen may_gen_t;
typedef void *(*may_gen_fn_t)(may_gen_t *gen, void *arg);
/* stack_size 0: the configured default. */
MAY_API int may_gen_new(may_gen_t **gen, may_gen_fn_t fn, void *arg,
                        size_t stack_size);
/* Run the generator until it yields (returns 1, *value = yielded value) or
 * returns (returns 0, *value = its result).  -EINVAL once it has finished or
 * when called from inside the generator itself. */
MAY_API int may_gen_resume(may_gen_t *gen, void **value);
/* From inside the generator: hand value to the resumer and wait. */
MAY_API void may_gen_yield(may_gen_t *gen, void *value);
/* Free the generator.  Of an unfinished one (suspended in may_gen_yield)
 * only the cleanup handlers it pushed and has not popped run, newest first,
 * on the caller's stack (the generator's frames are still intact), like
 * Python's close() running a generator's finally blocks; then its stack is
 * released.  Not from inside the generator itself.
 *
 * A generator's cleanup handlers are its own, never its resumer's: those
 * still pushed also run when its function returns, and when it calls
 * may_exit or may_panic, which end the coroutine (or thread) that resumed
 * it: first every generator it is running runs its handlers, innermost
 * first, and is finished (free it as usual, e.g. from a cleanup handler of
 * the coroutine), then the coroutine's handlers run, on its own stack. */
MAY_API void may_gen_free(may_gen_t *gen);

/* ------------------------------------------------------------------------ */
/* Statistics and debugging                                                 */
/* ------------------------------------------------------------------------ */

typedef struct may_worker_stats {
    uint64_t switches;  /* context switches into coroutines */
    uint64_t spawns;    /* coroutines spawned here */
    uint64_t steals;    /* coroutines stolen from other workers */
    uint64_t parks;     /* times this worker went to sleep */
    uint64_t runnable;  /* coroutines in its run queue and inbox now */
    uint64_t running;   /* id of the coroutine it runs now, 0: none */
} may_worker_stats_t;

/* A snapshot, read without stopping anything: counts taken a moment apart
 * need not add up exactly while coroutines run. */
typedef struct may_stats {
    uint64_t alive;     /* coroutines spawned and not yet ended */
    uint64_t spawned;   /* coroutines spawned since start */
    uint64_t timers;    /* armed timers (sleeps and waits with deadlines) */
    uint64_t switches, steals; /* totals over workers */
    int workers;
    may_worker_stats_t worker[64]; /* the first 64 workers */
    /* totals over every worker and the global queue */
    uint64_t runnable;  /* waiting for a worker */
    uint64_t running;   /* on a worker now */
    uint64_t parked;    /* alive - runnable - running (blocked somewhere) */
    uint64_t fd_waiters; /* coroutines and threads waiting for fd readiness */
    /* -- added in 0.2 -- */
    uint64_t handoffs;  /* times a blocked worker's place went to another
                           thread (docs/CAVEATS.md rule 1) */
    int threads;        /* worker threads now, spares included (>= workers) */
} may_stats_t;
/* Fill *out.  0, or -EINVAL (out NULL, or a size below the first version's). */
MAY_API int may_stats_sized(may_stats_t *out, size_t size);
#define may_stats(out) may_stats_sized((out), sizeof(may_stats_t))

/* Write every coroutine to out: id, name, state (running on worker N,
 * runnable, parked and on what, ended), entry function and, for one that is
 * switched out, a backtrace from its frame pointers (function names as
 * dladdr sees them, and module+offset for addr2line).  The workers are not
 * stopped: the dump is a snapshot, and it holds the stack registry's lock
 * while it writes, so spawns that need a new stack wait meanwhile.  Returns
 * the number of coroutines listed, or -EINVAL (out NULL).  See
 * docs/DEBUGGING.md. */
MAY_API long may_dump(FILE *out);
/* From now on signal sig (e.g. SIGQUIT or SIGUSR1) writes the same dump to
 * stderr (the process keeps running); 0 turns it off.  0, -EINVAL (not a
 * usable signal: SIGKILL, SIGSTOP, SIGSEGV, SIGBUS), or -errno. */
MAY_API int may_dump_on_signal(int sig);

/* ------------------------------------------------------------------------ */
/* Blocking offload                                                         */
/* ------------------------------------------------------------------------ */

/* Calls that can only block (getaddrinfo, file I/O, a library with no
 * non-blocking API) run on a pool of helper threads named "may-offload"
 * (docs/OFFLOAD.md): a calling coroutine parks and its worker runs other
 * coroutines meanwhile; a plain thread sleeps.  Helpers start on demand up to
 * max_threads and exit after 10 s idle, so an idle program has none.
 * may_shutdown waits for every call still running, abandoned ones included.
 *
 * The deadline and cancellation bound the wait for a helper: a call that has
 * not started by then is taken off the queue and never runs.  A call already
 * running cannot be interrupted: may_offload then returns at once and
 * abandons it (it runs to its end on the helper, its result is dropped);
 * the file calls below instead wait for it, because it uses the caller's
 * buffer, and return its result. */
#ifdef _WIN32
/* Winsock 2: socklen_t, struct sockaddr_storage.  Include it before
 * <windows.h> (or define WIN32_LEAN_AND_MEAN), as with any Winsock program. */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <sys/types.h> /* ssize_t (MinGW), mode_t */
/* POSIX's scatter/gather element (may_tcp_readv/writev), which Windows
 * lacks; a program that has its own defines MAY_HAVE_STRUCT_IOVEC. */
#ifndef MAY_HAVE_STRUCT_IOVEC
#define MAY_HAVE_STRUCT_IOVEC 1
struct iovec {
    void *iov_base;
    size_t iov_len;
};
#endif
/* may_tcp_shutdown's how, by their POSIX names (Winsock: SD_*). */
#ifndef SHUT_RD
#define SHUT_RD SD_RECEIVE
#define SHUT_WR SD_SEND
#define SHUT_RDWR SD_BOTH
#endif
#else
#include <sys/socket.h> /* socklen_t, struct sockaddr_storage */
#include <sys/types.h>  /* ssize_t, mode_t */
#endif

/* Run fn(arg) on a helper and return 0 with *result = its value (result may
 * be NULL); -EINVAL (fn NULL), -EAGAIN (saturated: max_threads calls running
 * and max_queue waiting; or no helper thread could start), -ENOMEM,
 * -ETIMEDOUT, -ECANCELED.  After -ETIMEDOUT / -ECANCELED fn may still be
 * running, so arg must stay valid until fn returns: use may_offload_ex to
 * hand arg over. */
MAY_API int may_offload(void *(*fn)(void *), void *arg, void **result, int64_t deadline);
/* The same, and every call that does not return 0 ends with exactly one
 * drop(arg, result, ran): from the caller before it returns when fn never
 * ran (ran false, result NULL), or on the helper when an abandoned fn
 * returns (ran true).  So drop may free arg (and result). */
MAY_API int may_offload_ex(void *(*fn)(void *), void *arg, void **result,
                           void (*drop)(void *arg, void *result, bool ran), int64_t deadline);
/* Bound the pool: at most max_threads helpers (0: $MAY_OFFLOAD_THREADS, else
 * 64; at most 4096) and max_queue calls waiting for one (0: 1024).  Any time;
 * helpers above a lowered maximum exit when idle.  0 or -EINVAL. */
MAY_API int may_offload_config(int max_threads, int max_queue);

/* Resolve host and port (numbers or names, e.g. "example.com", "http") to the
 * first address getaddrinfo gives (its preferred order) for family (AF_UNSPEC,
 * AF_INET, AF_INET6) and socktype (SOCK_STREAM, ...; 0: any).  host NULL or
 * "": the wildcard address (for bind).  Numeric addresses resolve at once;
 * names go to the pool.  0 with *out and *outlen (outlen may be NULL) filled,
 * or: -ENOENT (no such host or service), -ENODATA (the name has no address
 * of that family), -EAGAIN (temporary resolver failure, or the pool is
 * saturated), -EIO (resolver failure), -EAFNOSUPPORT, -ESOCKTNOSUPPORT,
 * -ENOMEM, -ENAMETOOLONG (host over 1024 or port over 64 bytes), -EINVAL,
 * -ETIMEDOUT, -ECANCELED.  This is the system resolver as it is: it looks
 * "localhost" up like any name, where the socket calls taking "host:port"
 * take it for loopback without a lookup (see "Addresses" under TCP). */
MAY_API int may_resolve(const char *host, const char *port, int family, int socktype,
                        struct sockaddr_storage *out, socklen_t *outlen, int64_t deadline);
/* Split an address into NUL-terminated host and port.  This is the one
 * grammar of every call that takes "host:port" (may_tcp_listen,
 * may_tcp_connect, may_udp_bind, may_udp_connect, which use this parser):
 *   host:port      a name ("example.com", "localhost") or an IPv4 address
 *   [v6addr]:port  an IPv6 address in brackets (zone allowed:
 *                  "[fe80::1%eth0]:80"); a bare one ("::1:80") is refused
 *   :port          no host (host ""): see "Addresses" under TCP
 * The port is a number or a service name ("http") and must not be empty.
 * 0, -EINVAL (NULL, or malformed: no port, an empty port, a bare IPv6
 * address, stray brackets) or -ENAMETOOLONG (a part does not fit its
 * buffer; the socket calls allow a host of 1024 and a port of 64 bytes,
 * may_resolve's limits). */
MAY_API int may_parse_host_port(const char *s, char *host, size_t hostlen, char *port,
                                size_t portlen);

/* Regular-file I/O on the pool (pipes and sockets belong to the reactor).
 * off -1: read(2)/write(2) at the file offset, else pread(2)/pwrite(2).
 * Bytes transferred (short counts as the system call gives them), or
 * -errno; -EAGAIN / -ETIMEDOUT / -ECANCELED as for may_offload, only while
 * the call waits for a helper. */
MAY_API ssize_t may_file_read(int fd, void *buf, size_t n, int64_t off, int64_t deadline);
MAY_API ssize_t may_file_write(int fd, const void *buf, size_t n, int64_t off,
                               int64_t deadline);
/* fsync(2): 0 or -errno. */
MAY_API int may_file_fsync(int fd, int64_t deadline);
/* open(2): a descriptor or -errno.  An open still blocked (a FIFO, a hung
 * network file system) at the deadline or cancellation is abandoned, and
 * the descriptor it makes later is closed. */
MAY_API int may_file_open(const char *path, int flags, mode_t mode, int64_t deadline);

/* ==== BEGIN SYNC (synchronisation, channels, select) ==================== */

/*
 * Synchronisation objects and channels (docs/SYNC.md).
 *
 * Every object here works between any mix of coroutines and plain threads:
 * a coroutine that blocks parks (its worker runs other coroutines), a thread
 * that blocks sleeps in the kernel.  Objects are opaque handles made by
 * may_X_new and released by may_X_free (only once nobody uses them any
 * more); may_once_t alone is a plain struct, because it must work before
 * anything could have been made.
 *
 * Blocking calls take an absolute deadline (MAY_FOREVER, MAY_NOWAIT or a
 * may_now()-based time) and return -ETIMEDOUT when it passes, and
 * -ECANCELED in a cancelled coroutine by the contract under Cancellation at
 * the top (a call that can complete without waiting still completes).  A
 * waiter that times out or is cancelled leaves the object as if it had
 * never waited: it takes no lock, permit, message or wake-up that
 * another waiter should have had.  The try forms never wait and report a
 * busy object as -EBUSY (locks) or -EAGAIN (everything else).
 */

/* ---- Mutex ------------------------------------------------------------- */

/* Not recursive; not tied to an owner (any caller may unlock, as in Go).
 * Waiters are queued in FIFO order.  A newcomer may take a free mutex ahead
 * of a woken waiter (barging, for throughput), but a waiter that has waited
 * over 1 ms switches the mutex to hand-off mode, where unlock gives it
 * straight to the oldest waiter: nobody starves. */
typedef struct may_mutex may_mutex_t;
MAY_API int may_mutex_new(may_mutex_t **m);
MAY_API void may_mutex_free(may_mutex_t *m);
/* 0, -ETIMEDOUT or -ECANCELED. */
MAY_API int may_mutex_lock(may_mutex_t *m, int64_t deadline);
/* 0 or -EBUSY. */
MAY_API int may_mutex_trylock(may_mutex_t *m);
/* 0, or -EPERM when m is not locked. */
MAY_API int may_mutex_unlock(may_mutex_t *m);

/* ---- Reader-writer lock ------------------------------------------------ */

/* Priority: once a writer waits, new readers wait behind it (writers are
 * not starved by a stream of readers); when a writer unlocks, every reader
 * that was waiting gets in before the next writer (readers are not starved
 * by a stream of writers).  Writers are served in FIFO order. */
typedef struct may_rwlock may_rwlock_t;
MAY_API int may_rwlock_new(may_rwlock_t **rw);
MAY_API void may_rwlock_free(may_rwlock_t *rw);
/* 0, -ETIMEDOUT or -ECANCELED. */
MAY_API int may_rwlock_rdlock(may_rwlock_t *rw, int64_t deadline);
MAY_API int may_rwlock_wrlock(may_rwlock_t *rw, int64_t deadline);
/* 0 or -EBUSY. */
MAY_API int may_rwlock_tryrdlock(may_rwlock_t *rw);
MAY_API int may_rwlock_trywrlock(may_rwlock_t *rw);
/* 0, or -EPERM when not held that way. */
MAY_API int may_rwlock_rdunlock(may_rwlock_t *rw);
MAY_API int may_rwlock_wrunlock(may_rwlock_t *rw);

/* ---- Condition variable ------------------------------------------------ */

typedef struct may_cond may_cond_t;
MAY_API int may_cond_new(may_cond_t **c);
MAY_API void may_cond_free(may_cond_t *c);
/* Unlock m (locked by the caller), wait for a signal, lock m again.  Returns
 * 0 (signalled, or spuriously: re-check the predicate), -ETIMEDOUT or
 * -ECANCELED, in every case with m locked again; or -EINVAL, with m left
 * alone, when other waiters wait on c with a different mutex. */
MAY_API int may_cond_wait(may_cond_t *c, may_mutex_t *m, int64_t deadline);
/* Wake the longest waiter / every waiter (no effect when none waits). */
MAY_API void may_cond_signal(may_cond_t *c);
MAY_API void may_cond_broadcast(may_cond_t *c);

/* ---- Counting semaphore ------------------------------------------------ */

typedef struct may_sem may_sem_t;
MAY_API int may_sem_new(may_sem_t **s, unsigned value);
MAY_API void may_sem_free(may_sem_t *s);
/* Take one unit: 0, -ETIMEDOUT or -ECANCELED.  Waiters are served FIFO. */
MAY_API int may_sem_wait(may_sem_t *s, int64_t deadline);
/* 0 or -EAGAIN. */
MAY_API int may_sem_trywait(may_sem_t *s);
/* Give one unit (to the longest waiter, if any): 0 or -EOVERFLOW. */
MAY_API int may_sem_post(may_sem_t *s);
/* Units available now. */
MAY_API int may_sem_value(may_sem_t *s);

/* ---- Barrier ----------------------------------------------------------- */

#define MAY_BARRIER_LEADER 1
typedef struct may_barrier may_barrier_t;
/* count >= 1 parties per round; the barrier is reusable. */
MAY_API int may_barrier_new(may_barrier_t **b, unsigned count);
MAY_API void may_barrier_free(may_barrier_t *b);
/* Wait for count parties.  Exactly one of them (the last to arrive) gets
 * MAY_BARRIER_LEADER, the others 0.  -ETIMEDOUT / -ECANCELED withdraw the
 * caller from the round (it no longer counts as arrived). */
MAY_API int may_barrier_wait(may_barrier_t *b, int64_t deadline);

/* ---- Wait group -------------------------------------------------------- */

/* Go's sync.WaitGroup: add before starting work, done when it ends, wait
 * until the counter is zero.  Reuse it only after every wait has returned. */
typedef struct may_wg may_wg_t;
MAY_API int may_wg_new(may_wg_t **wg);
MAY_API void may_wg_free(may_wg_t *wg);
/* 0, or -EINVAL (counter would go negative; nothing changes). */
MAY_API int may_wg_add(may_wg_t *wg, long delta);
MAY_API int may_wg_done(may_wg_t *wg);
/* 0 once the counter is zero, -ETIMEDOUT or -ECANCELED. */
MAY_API int may_wg_wait(may_wg_t *wg, int64_t deadline);

/* ---- One-shot event ---------------------------------------------------- */

/* A flag that is set once and never cleared; waiting returns once set. */
typedef struct may_event may_event_t;
MAY_API int may_event_new(may_event_t **e);
MAY_API void may_event_free(may_event_t *e);
/* Set the flag and wake every waiter: 0, or -EALREADY if it was set. */
MAY_API int may_event_fire(may_event_t *e);
/* 0 once fired, -ETIMEDOUT or -ECANCELED. */
MAY_API int may_event_wait(may_event_t *e, int64_t deadline);
MAY_API bool may_event_is_fired(may_event_t *e);

/* ---- Once -------------------------------------------------------------- */

/* Static initialisation only: may_once_t o = MAY_ONCE_INIT.  The fields are
 * private. */
typedef struct may_once {
    int state;
    int lock;
    void *waiters;
} may_once_t;
#define MAY_ONCE_INIT { 0, 0, 0 }
/* Run fn(arg) exactly once per o; callers that come while it runs wait for
 * it to end (a coroutine parks).  This wait has no deadline and ignores
 * cancellation: returning before fn ended would let the caller use what fn
 * has not finished making.  Returns 0. */
MAY_API int may_once(may_once_t *o, void (*fn)(void *), void *arg);

/* ---- Channels ---------------------------------------------------------- */

/* A channel carries elements of one fixed size, copied by value.  Capacity 0
 * is a rendezvous (each send meets a receive, like Go's unbuffered
 * channel); MAY_CHAN_UNBOUNDED never blocks senders (the buffer grows).
 * One implementation serves any number of senders and receivers.
 *
 * Closing (Go's semantics): sends fail with -EPIPE from then on, receivers
 * first drain what is buffered and then get -EPIPE; blocked senders and
 * receivers wake with -EPIPE. */
#define MAY_CHAN_UNBOUNDED ((size_t)-1)
typedef struct may_chan may_chan_t;
/* elem_size may be 0 (pure signals).  0, -EINVAL or -ENOMEM. */
MAY_API int may_chan_new(may_chan_t **ch, size_t elem_size, size_t capacity);
/* The typed form, like libmill's chmake(type, n). */
#define may_chan_make(chp, type, capacity) may_chan_new((chp), sizeof(type), (capacity))
MAY_API void may_chan_free(may_chan_t *ch);
/* Copy *elem into the channel.  0, -EPIPE (closed), -ETIMEDOUT, -ECANCELED,
 * -ENOMEM (unbounded channel could not grow). */
MAY_API int may_chan_send(may_chan_t *ch, const void *elem, int64_t deadline);
/* Copy the next element into *elem (NULL: discard it).  0, -EPIPE (closed
 * and drained), -ETIMEDOUT, -ECANCELED. */
MAY_API int may_chan_recv(may_chan_t *ch, void *elem, int64_t deadline);
/* Never wait: -EAGAIN where send/recv would have waited. */
MAY_API int may_chan_trysend(may_chan_t *ch, const void *elem);
MAY_API int may_chan_tryrecv(may_chan_t *ch, void *elem);
/* 0, or -EPIPE when already closed. */
MAY_API int may_chan_close(may_chan_t *ch);
MAY_API bool may_chan_is_closed(may_chan_t *ch);
/* Elements buffered now; capacity (MAY_CHAN_UNBOUNDED for unbounded). */
MAY_API size_t may_chan_len(may_chan_t *ch);
MAY_API size_t may_chan_cap(may_chan_t *ch);

/* ---- Select ------------------------------------------------------------ */

enum {
    MAY_SELECT_NONE = 0, /* an unused case: never ready */
    MAY_SELECT_RECV = 1,
    MAY_SELECT_SEND = 2,
};

typedef struct may_select_case {
    int op;           /* MAY_SELECT_* */
    may_chan_t *chan; /* NULL: never ready (a nil channel in Go) */
    void *elem;       /* RECV: destination (NULL: discard); SEND: source */
    int result;       /* out, for the chosen case: 0, or -EPIPE (closed) */
} may_select_case_t;

/* Wait until one case can proceed, perform it and return its index.  Only
 * that case takes effect: the others send or receive nothing.  Among cases
 * ready at once the choice is uniformly random.  A case on a closed channel
 * is ready, with result -EPIPE (receives only once drained).  Otherwise
 * -ETIMEDOUT (also: none ready with MAY_NOWAIT), -ECANCELED, -EINVAL (bad
 * op, or NULL cases with n > 0), -ENOMEM (n too large to keep on the
 * stack, and no memory). */
MAY_API int may_select(may_select_case_t *cases, size_t n, int64_t deadline);

/* ---- Timers and tickers (src/timer.c) ---------------------------------- */

/* Go's time.Timer and time.Ticker (with Go 1.23's semantics): a timer fires
 * once at its deadline, or every period after it; a firing is kept pending
 * (one at most) until someone takes it with may_timer_wait or a select's
 * MAY_CASE_TIMER, so a ticker drops the ticks nobody takes; reset and stop
 * discard a pending firing, so no stale one is seen after them.  Armed
 * timers sit in the runtime's timer heap (O(log n) to arm and stop); a
 * stopped one costs nothing.  Usable from plain threads too (the runtime
 * starts, as its workers run the timers). */
typedef struct may_timer may_timer_t;
/* A stopped timer.  0, -EINVAL, -ENOMEM, -ENOTRECOVERABLE (fork child). */
MAY_API int may_timer_new(may_timer_t **t);
/* A ticker: a new timer reset to fire every period ns (> 0; else -EINVAL),
 * first at may_now() + period. */
MAY_API int may_ticker_new(may_timer_t **t, int64_t period);
/* (Re)arm t to fire at deadline (absolute; one already passed fires at
 * once), then every period ns (0: once).  Returns 1 if t was armed or had a
 * firing pending (now discarded), 0 if not; -EINVAL (t NULL, deadline or
 * period negative). */
MAY_API int may_timer_reset(may_timer_t *t, int64_t deadline, int64_t period);
/* Disarm t and discard a pending firing: 1 if that stopped a firing (t was
 * armed, or one was pending), 0 if not (it had been taken, or t was
 * stopped); -EINVAL. */
MAY_API int may_timer_stop(may_timer_t *t);
/* Take one firing, waiting for it: 0, -ETIMEDOUT, -ECANCELED, -EINVAL.  A
 * firing that arrives just as the wait fails is left for the next taker. */
MAY_API int may_timer_wait(may_timer_t *t, int64_t deadline);
/* Stop and free t (nobody may be waiting on it). */
MAY_API void may_timer_free(may_timer_t *t);

/* ---- Select over any event (src/select.c) ------------------------------ */

enum {
    MAY_CASE_NONE = 0,     /* never ready (a nil channel in Go) */
    MAY_CASE_RECV = 1,     /* .chan, .elem the destination (NULL: discard)
                              -> 0, or -EPIPE (closed and drained) */
    MAY_CASE_SEND = 2,     /* .chan, .elem the source -> 0, or -EPIPE */
    MAY_CASE_FD = 3,       /* .fd ready for .events (MAY_READ | MAY_WRITE)
                              -> the ready subset (a hint, as may_fd_wait's),
                              or -EBADF (not open, or closed while waiting) */
    MAY_CASE_DEADLINE = 4, /* .deadline (absolute) has passed -> 0; Go's
                              time.After without the timer */
    MAY_CASE_TIMER = 5,    /* .timer fired: takes the firing -> 0 */
    MAY_CASE_JOIN = 6,     /* .co ended: joins it (the handle is released,
                              as by may_join) -> MAY_DONE, MAY_CANCELED or
                              MAY_PANICKED; its result into *(void **).elem
                              unless .elem is NULL */
    MAY_CASE_EVENT = 7,    /* .event fired -> 0 */
    MAY_CASE_CTX = 8,      /* .ctx done -> may_ctx_err: -ECANCELED or
                              -ETIMEDOUT */
};

typedef struct may_case {
    int op;     /* MAY_CASE_* */
    int events; /* MAY_CASE_FD: MAY_READ | MAY_WRITE */
    union {
        may_chan_t *chan;
        int fd;
        int64_t deadline;
        may_timer_t *timer;
        may_co_t *co;
        may_event_t *event;
        may_ctx_t *ctx;
    };
    void *elem;  /* RECV: destination; SEND: source; JOIN: void ** */
    int result;  /* out, for the chosen case (see each op) */
} may_case_t;

/* Wait until one case can proceed, perform it and return its index, as
 * Go's select: only that case takes effect (the others send, receive,
 * take, join nothing); among cases ready at once the choice is uniformly
 * random.  Otherwise -ETIMEDOUT (the deadline argument passed; with
 * MAY_NOWAIT: nothing was ready), -ECANCELED (the caller was cancelled:
 * ready cases are still taken first, by the contract at the top),
 * -EINVAL (a bad op; NULL cases with n > 0; a SEND without .elem on a
 * channel with elements; FD with no or unknown events; JOIN of NULL, of a
 * detached coroutine, of a scope's child, of one another caller joins, or
 * of the caller itself), -ENOMEM (n over 16 and no memory).  A case whose
 * object is NULL is never ready.  Two cases may name one object (a select
 * never meets itself on a channel). */
MAY_API int may_select_any(may_case_t *cases, size_t n, int64_t deadline);

/* Case builders: may_case_t c[] = { may_case_recv(ch, &v),
 * may_case_deadline(may_deadline_in(MS)) }. */
static inline may_case_t may_case_recv(may_chan_t *ch, void *elem)
{
    may_case_t c = { .op = MAY_CASE_RECV, .chan = ch, .elem = elem };
    return c;
}
static inline may_case_t may_case_send(may_chan_t *ch, const void *elem)
{
    may_case_t c = { .op = MAY_CASE_SEND, .chan = ch, .elem = (void *)elem };
    return c;
}
static inline may_case_t may_case_fd(int fd, int events)
{
    may_case_t c = { .op = MAY_CASE_FD, .events = events, .fd = fd };
    return c;
}
static inline may_case_t may_case_deadline(int64_t deadline)
{
    may_case_t c = { .op = MAY_CASE_DEADLINE, .deadline = deadline };
    return c;
}
static inline may_case_t may_case_timer(may_timer_t *t)
{
    may_case_t c = { .op = MAY_CASE_TIMER, .timer = t };
    return c;
}
static inline may_case_t may_case_join(may_co_t *co, void **result)
{
    may_case_t c = { .op = MAY_CASE_JOIN, .co = co, .elem = (void *)result };
    return c;
}
static inline may_case_t may_case_event(may_event_t *e)
{
    may_case_t c = { .op = MAY_CASE_EVENT, .event = e };
    return c;
}
static inline may_case_t may_case_ctx(may_ctx_t *ctx)
{
    may_case_t c = { .op = MAY_CASE_CTX, .ctx = ctx };
    return c;
}

/* ---- Contexts: a cancellation tree (src/ctx.c) ------------------------- */

/*
 * Go's context.Context, for cancellation: contexts form a tree, and
 * cancelling one (or its deadline passing) cancels its whole subtree and
 * every coroutine running under any context of it.  A coroutine runs under
 * the context given at its spawn (may_spawn_opts_t.ctx), else under its
 * spawner's (so everything a request's coroutine starts is under the
 * request's context), else under none.
 *
 * What a coroutine under a context sees when the context ends: it is
 * cancelled, exactly as by may_cancel (sticky; its blocking calls fail
 * with -ECANCELED, by the contract at the top; its scopes' children are
 * cancelled).  That holds for a deadline too: -ETIMEDOUT stays the answer
 * of a call whose own deadline passed (try again later), -ECANCELED says
 * the whole operation is over; why it is over is may_ctx_err (-ECANCELED
 * or -ETIMEDOUT) and may_ctx_cause (the cause given to may_ctx_cancel, or
 * -ETIMEDOUT) of may_ctx_current().  Code that is not under the context
 * can wait for it: may_ctx_wait, or a select's MAY_CASE_CTX.
 *
 * Scopes and contexts: a scope owns coroutines (it joins them; its owner's
 * cancellation reaches them); a context reaches coroutines that need not
 * be owned by one another (detached ones, a connection's workers) and
 * carries a deadline and a cause.  They nest: a scope's children inherit
 * their spawner's context.
 */
/* A new context under parent (NULL: a root).  deadline: absolute, or
 * MAY_FOREVER; it ends at the earlier of its deadline and its parent's.  A
 * context made under an ended parent starts ended.  0, -EINVAL, -ENOMEM. */
MAY_API int may_ctx_new(may_ctx_t **ctx, may_ctx_t *parent, int64_t deadline);
/* End ctx and its subtree with cause (a negative errno value or any
 * non-zero code of the program's; 0 means -ECANCELED), cancelling every
 * coroutine under them.  0, or -EALREADY when ctx had ended (the first
 * cause stays), -EINVAL. */
MAY_API int may_ctx_cancel(may_ctx_t *ctx, int cause);
/* 0 while live; -ECANCELED (cancelled, itself or through an ancestor) or
 * -ETIMEDOUT (a deadline passed). */
MAY_API int may_ctx_err(const may_ctx_t *ctx);
/* Why it ended: the cause given to the may_ctx_cancel that ended it (or an
 * ancestor), -ETIMEDOUT for a deadline; 0 while live. */
MAY_API int may_ctx_cause(const may_ctx_t *ctx);
/* Its deadline (the earlier of its own and its ancestors'), or MAY_FOREVER. */
MAY_API int64_t may_ctx_deadline(const may_ctx_t *ctx);
/* Wait until ctx ends: 0, -ETIMEDOUT, -ECANCELED (the caller was
 * cancelled; a caller under ctx itself is, when ctx ends: 0 comes first,
 * as the call can complete without waiting then). */
MAY_API int may_ctx_wait(may_ctx_t *ctx, int64_t deadline);
/* The context the calling coroutine runs under, or NULL (none, or a plain
 * thread). */
MAY_API may_ctx_t *may_ctx_current(void);
/* End ctx (as may_ctx_cancel with -ECANCELED, unless it had ended) and
 * drop the handle, as Go's `defer cancel()`.  Its memory lives on while
 * child contexts or coroutines still hold it; children stay valid handles
 * (ended) until freed themselves. */
MAY_API void may_ctx_free(may_ctx_t *ctx);

/* ==== END SYNC ========================================================== */

/* ==== BEGIN IO (network I/O, docs/IO.md) ================================ */

/*
 * Network I/O: wait for fd readiness, read and write without blocking the
 * worker, TCP.  A coroutine that must wait parks (its worker runs others);
 * a plain thread sleeps.  Same conventions as above: -errno results,
 * absolute deadlines (-ETIMEDOUT), -ECANCELED in a cancelled coroutine by
 * the contract under Cancellation at the top.
 *
 * Windows (docs/WINDOWS.md): an fd is a kernel handle's value as an int,
 * sockets (SOCKET), pipes (may_process_stdio) and files (may_file_open)
 * alike, so they never collide; 0, 1 and 2 are the standard handles.  A C
 * runtime fd is not one: pass _get_osfhandle(fd).  may_fd_wait and the
 * readiness calls take sockets only (-ENOTSUP otherwise); may_read and
 * may_write on a pipe or file run on the offload pool.
 *
 * The first call on an fd registers it with the runtime's poller and sets
 * O_NONBLOCK on it (for a shared file description, such as a terminal, that
 * is visible to other processes).  Close such an fd with may_fd_close, not
 * close(2): it wakes every waiter with -EBADF and unregisters the fd.
 * Closing an fd while another coroutine is inside a read or write system
 * call on it (not waiting) is a race, as with threads.
 */
#include <sys/types.h> /* ssize_t */

struct iovec;
struct sockaddr_storage;

enum {
    MAY_READ = 1 << 0,  /* readable (or EOF, error, hang-up) */
    MAY_WRITE = 1 << 1, /* writable (or error, hang-up) */
};

/* Wait until fd is ready for events (MAY_READ | MAY_WRITE): returns the
 * ready subset (> 0), or -ETIMEDOUT, -ECANCELED, -EBADF (fd closed, also by
 * may_fd_close while waiting), -EINVAL.  Any pollable fd: sockets, pipes,
 * eventfd, terminals; a regular file is always ready.  Readiness is a hint,
 * as with poll(2): a read right after it may still find nothing (say, the
 * event was for data already read), so read with MAY_NOWAIT and wait again
 * on -ETIMEDOUT, or use the may_* calls, which wait again by themselves. */
MAY_API int may_fd_wait(int fd, int events, int64_t deadline);
/* Wake every waiter on fd with -EBADF, unregister it and close it.  0 or
 * -errno (of close(2)). */
MAY_API int may_fd_close(int fd);
/* As may_fd_close, but leave fd open: wake every waiter with -EBADF and
 * unregister it, for code that closes fd itself (the interposition
 * library's close, docs/HOOKS.md).  Takes no lock when fd was never
 * registered.  0, or -EBADF for a negative fd. */
MAY_API int may_fd_forget(int fd);
/* A readiness ticket, for code that tries a non-blocking call itself and
 * waits only on EAGAIN: take may_fd_ticket(fd, MAY_READ or MAY_WRITE)
 * before the call; if the call says EAGAIN, may_fd_wait_ticket waits for
 * readiness in that direction newer than the ticket, without asking the
 * kernel first (may_fd_wait must poll(2) once, as it cannot know what
 * happened before it was called).  The ticket registers fd as may_fd_wait
 * does.  A ticket (>= 0) or -errno (-EBADF, -EMFILE, -ENOMEM, -EINVAL);
 * the wait returns as may_fd_wait does (-EBADF also when fd was closed
 * since the ticket).  libmay_hook uses it for reads. */
MAY_API int64_t may_fd_ticket(int fd, int events);
MAY_API int may_fd_wait_ticket(int fd, int events, int64_t ticket, int64_t deadline);
/* read(2) / write(2) that park instead of returning EAGAIN: the bytes
 * transferred (> 0; 0 from read at end of file), or -errno, -ETIMEDOUT,
 * -ECANCELED.  A write may be partial, like write(2).  Writing to a pipe
 * whose reader is gone raises SIGPIPE as usual (sockets: use may_tcp_*). */
MAY_API ssize_t may_read(int fd, void *buf, size_t n, int64_t deadline);
MAY_API ssize_t may_write(int fd, const void *buf, size_t n, int64_t deadline);

/* ---- TCP --------------------------------------------------------------- */

/* Addresses (TCP and UDP alike) are "host:port", "[v6addr]:port" or
 * ":port", parsed by may_parse_host_port, and mean:
 *   - a numeric address: itself ("0.0.0.0:80" and "[::]:80" are wildcards);
 *   - "localhost" (any case, a final dot allowed): loopback, always, and
 *     without a lookup: 127.0.0.1, then ::1.  A listener or a UDP bind on
 *     "localhost:N" takes 127.0.0.1 only (::1 only where IPv4 is missing),
 *     as Go's net.Listen("tcp", "localhost:N") does, and is never reachable
 *     from another host; a connect tries 127.0.0.1, then ::1;
 *   - ":port": for listen and bind every interface (the IPv6 wildcard,
 *     which accepts IPv4 too, or 0.0.0.0 without IPv6); for connect this
 *     host, as "localhost";
 *   - any other name: may_resolve's first address (looked up on the
 *     offload pool, so no worker blocks).
 * Errors: may_parse_host_port's (-EINVAL, -ENAMETOOLONG), may_resolve's,
 * then the socket calls'.  A listen or bind moves on to the next address
 * only when the family is unavailable (-EAFNOSUPPORT, -EADDRNOTAVAIL):
 * "localhost:N" with 127.0.0.1:N taken fails with -EADDRINUSE. */
#define MAY_TCP_REUSEPORT 1 /* may_tcp_listen: SO_REUSEPORT */

/* A listening socket on host_port (see "Addresses" above; SO_REUSEADDR
 * always).  backlog <= 0: SOMAXCONN.  Returns the fd or -errno. */
MAY_API int may_tcp_listen(const char *host_port, int backlog, int flags);
/* Accept a connection (non-blocking, close-on-exec): the new fd, or -errno.
 * peer (may be NULL) receives the peer's address.  When the process is out
 * of descriptors (EMFILE, ENFILE) it retries with a sleep growing from 1 ms
 * to 100 ms (no busy loop) until the deadline, then returns -EMFILE/-ENFILE. */
MAY_API int may_tcp_accept(int lfd, struct sockaddr_storage *peer, int64_t deadline);
/* Connect (each address in turn): the fd, or -ECONNREFUSED, -ETIMEDOUT,
 * -ECANCELED, ...  The deadline bounds a name lookup too. */
MAY_API int may_tcp_connect(const char *host_port, int64_t deadline);
/* recv/send: bytes (> 0), 0 at EOF (read), -ECONNRESET when the peer reset
 * the connection, -EPIPE when writing after a shutdown (never SIGPIPE). */
MAY_API ssize_t may_tcp_read(int fd, void *buf, size_t n, int64_t deadline);
MAY_API ssize_t may_tcp_write(int fd, const void *buf, size_t n, int64_t deadline);
/* Read exactly n bytes: n, or fewer when EOF came first, or -errno (then the
 * bytes already read are lost). */
MAY_API ssize_t may_tcp_read_full(int fd, void *buf, size_t n, int64_t deadline);
/* Write all n bytes: n or -errno (some may have been sent). */
MAY_API ssize_t may_tcp_write_all(int fd, const void *buf, size_t n, int64_t deadline);
MAY_API ssize_t may_tcp_readv(int fd, const struct iovec *iov, int iovcnt, int64_t deadline);
MAY_API ssize_t may_tcp_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline);
/* Like may_tcp_read but leaves the data queued (MSG_PEEK). */
MAY_API ssize_t may_tcp_peek(int fd, void *buf, size_t n, int64_t deadline);
/* shutdown(2): how is SHUT_RD, SHUT_WR or SHUT_RDWR.  0 or -errno. */
MAY_API int may_tcp_shutdown(int fd, int how);
/* = may_fd_close. */
MAY_API int may_tcp_close(int fd);
MAY_API int may_tcp_set_nodelay(int fd, bool on);
/* SO_KEEPALIVE; idle_s > 0 also sets the idle time and probe interval. */
MAY_API int may_tcp_set_keepalive(int fd, bool on, int idle_s);
/* "1.2.3.4:80" or "[::1]:80" into buf: the length, or -ENOSPC, -errno. */
MAY_API int may_tcp_local_addr(int fd, char *buf, size_t n);
MAY_API int may_tcp_peer_addr(int fd, char *buf, size_t n);
MAY_API int may_sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t n);
/* The local port (e.g. of a listener bound to port 0), or -errno. */
MAY_API int may_tcp_local_port(int fd);

/* ---- UDP (src/udp_unix.c) --------------------------------------------- */

/* Sockets are non-blocking and close-on-exec; close them with may_fd_close.
 * may_tcp_local_port / may_tcp_local_addr / may_sockaddr_str work on them.
 * Datagram receives return the datagram's full length even when it did not
 * fit: a result > n means the datagram was truncated to n bytes (MSG_TRUNC);
 * the rest is lost.  A zero-length datagram returns 0. */
struct sockaddr;

/* A UDP socket bound to host_port (as may_tcp_listen's: "localhost" is
 * loopback, ":port" every interface; see "Addresses" under TCP); port 0
 * picks an ephemeral port.  No SO_REUSEADDR.  The fd, or -errno
 * (-EADDRINUSE, the address errors). */
MAY_API int may_udp_bind(const char *host_port);
/* An unbound UDP socket of family AF_INET or AF_INET6 (-EAFNOSUPPORT
 * otherwise); the kernel binds it on the first send. */
MAY_API int may_udp_socket(int family);
/* Set the default peer (connect(2) on a datagram socket: no handshake, and
 * only that peer's datagrams are received) to host_port (see "Addresses"
 * under TCP; ":port" and "localhost" are loopback).  On an IPv6 socket an
 * IPv4 peer is its mapped address ::ffff:a.b.c.d, so a dual-stack socket
 * connected to "localhost" reaches 127.0.0.1 (a v6-only one gets ::1).
 * host_port NULL dissolves the association.  0 or -errno; an unreachable
 * peer shows later as -ECONNREFUSED from send/recv. */
MAY_API int may_udp_connect(int fd, const char *host_port);
/* Send one datagram to `to`: n, or -errno (-EMSGSIZE: too big), -ETIMEDOUT,
 * -ECANCELED (waiting only happens while the send buffer is full). */
MAY_API ssize_t may_udp_sendto(int fd, const void *buf, size_t n, const struct sockaddr *to,
                               socklen_t tolen, int64_t deadline);
/* Receive one datagram: its full length (see above), or -errno, -ETIMEDOUT,
 * -ECANCELED.  from (may be NULL) receives the sender's address; *fromlen
 * (may be NULL) is set to its length. */
MAY_API ssize_t may_udp_recvfrom(int fd, void *buf, size_t n, struct sockaddr_storage *from,
                                 socklen_t *fromlen, int64_t deadline);
/* On a connected socket (may_udp_connect). */
MAY_API ssize_t may_udp_send(int fd, const void *buf, size_t n, int64_t deadline);
MAY_API ssize_t may_udp_recv(int fd, void *buf, size_t n, int64_t deadline);
/* SO_BROADCAST.  0 or -errno. */
MAY_API int may_udp_set_broadcast(int fd, bool on);
/* Join / leave a multicast group ("239.1.2.3", "ff02::1").  iface NULL or
 * "": the kernel's choice; an IPv4 address ("127.0.0.1") or an interface
 * name ("lo") for IPv4 groups; a name or index ("1") for IPv6.  0, -EINVAL
 * (not a multicast address), -ENODEV (no such interface), -errno (e.g.
 * -EADDRINUSE: joined already; -EADDRNOTAVAIL, -ENODEV: the interface does
 * no multicast). */
MAY_API int may_udp_join_multicast(int fd, const char *group, const char *iface);
MAY_API int may_udp_leave_multicast(int fd, const char *group, const char *iface);

/* ---- Unix-domain sockets (src/udp_unix.c) ------------------------------ */

/* Paths: a file system path of at most 107 bytes (-ENAMETOOLONG beyond,
 * -EINVAL when empty), or "@name" for Linux's abstract namespace (name at
 * most 107 bytes; no file, gone with the last socket).  Binding creates
 * the socket file, and nothing here removes it: unlink it after closing
 * (binding to an existing path gives -EADDRINUSE).  Close with
 * may_fd_close.  Stream sockets use may_read / may_write (a write to a
 * closed peer raises SIGPIPE, as write(2) does) or the may_tcp_read/write
 * family (recv/send: -EPIPE, never SIGPIPE). */
#define MAY_UNIX_ADDR_MAX 109 /* a buffer that fits any returned path */

/* A listening stream socket bound to path; backlog <= 0: SOMAXCONN. */
MAY_API int may_unix_listen(const char *path, int backlog);
/* Accept (as may_tcp_accept, including its EMFILE backoff): the fd or
 * -errno, -ETIMEDOUT, -ECANCELED. */
MAY_API int may_unix_accept(int lfd, int64_t deadline);
/* Connect a stream socket: the fd, or -ENOENT (no such file),
 * -ECONNREFUSED (nobody listens), -ENAMETOOLONG, -ETIMEDOUT, -ECANCELED.
 * A listener whose backlog is full is retried (1 ms doubling to 64 ms)
 * until the deadline. */
MAY_API int may_unix_connect(const char *path, int64_t deadline);
/* A datagram socket bound to path, or unbound (it can send; replies cannot
 * reach it, and receivers see an empty sender path). */
MAY_API int may_unix_dgram_bind(const char *path);
MAY_API int may_unix_dgram_socket(void);
/* Send one datagram to the socket bound at path: n, or -errno (-ENOENT,
 * -ECONNREFUSED, -EMSGSIZE), -ETIMEDOUT, -ECANCELED.  While the receiver's
 * queue is full it waits (rechecking every 1 ms doubling to 64 ms: the
 * kernel sends no wake-up to an unconnected sender). */
MAY_API ssize_t may_unix_sendto(int fd, const void *buf, size_t n, const char *path,
                                int64_t deadline);
/* Receive one datagram: its full length (> n: truncated, as for UDP), or
 * -errno, -ETIMEDOUT, -ECANCELED.  from_path (may be NULL) receives the
 * sender's path ("" when unbound, "@name" when abstract), cut to from_len
 * bytes with its NUL (MAY_UNIX_ADDR_MAX always fits). */
MAY_API ssize_t may_unix_recvfrom(int fd, void *buf, size_t n, char *from_path,
                                  size_t from_len, int64_t deadline);
/* socketpair(2) of AF_UNIX and type SOCK_STREAM, SOCK_DGRAM or
 * SOCK_SEQPACKET: non-blocking, close-on-exec, registered with the poller.
 * 0 with fds set, or -errno. */
MAY_API int may_unix_socketpair(int type, int fds[2]);

/* ==== END IO ============================================================ */

/* ==== BEGIN SIGNALS (src/signal.c, docs/SIGNALS.md) ===================== */

/*
 * Signals for coroutines and threads, as Go's signal.Notify and libuv's
 * uv_signal.  A watcher catches a set of signals; each delivery is queued
 * on the watcher (up to its queue length; more are dropped and counted, as
 * Go drops on a full channel) until a coroutine or thread takes it with
 * may_signal_wait, or with a select on may_signal_chan (may_select's
 * MAY_SELECT_RECV, may_select_any's may_case_recv).  Every watcher of a
 * signal gets every delivery of it; several waiters on one watcher share
 * its deliveries (each goes to one).  The first watcher of a signal
 * installs libmay's handler (even over SIG_IGN, as Go does); when the last
 * watcher of it is freed, the disposition it had before the first is
 * restored, and a signal that arrives in between is dropped, never given a
 * default action the program did not have.  Do not change a watched
 * signal's disposition yourself meanwhile (the restore would undo it).
 * The kernel merges a standard signal sent again before its handler ran,
 * so count events, not signals, unless they are real-time ones.
 *
 * SIGPIPE: libmay's socket calls never raise it (MSG_NOSIGNAL; -EPIPE);
 * may_write on a pipe or socket raises it as write(2) does, which kills
 * the process by default.  Ignore it, or watch it to make it an event (the
 * write then returns -EPIPE).  Two descriptors (a close-on-exec self-pipe)
 * stay open from the first watcher on; a thread named "may-signal" runs
 * while any watcher exists (it is not a coroutine: may_shutdown is not
 * held up by watchers).  A fork child should exec (docs/SIGNALS.md).
 */
#include <signal.h>
typedef struct may_signal may_signal_t;
/* Watch the n signals sigs[] (n >= 1; repeats allowed).  queue: deliveries
 * kept while nobody takes them (0: 16; MAY_CHAN_UNBOUNDED refused).  0,
 * -EINVAL (NULL, n 0, a signal that cannot or must not be caught:
 * SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, the C library's own,
 * or out of range), -ENOMEM, -ENOTRECOVERABLE (in the child of a fork made
 * while watchers existed), -errno (no descriptors for the pipe, no
 * thread). */
MAY_API int may_signal_new(may_signal_t **s, const int *sigs, size_t n, size_t queue);
/* Take the next delivery: the signal's number (> 0), -ETIMEDOUT,
 * -ECANCELED (by the contract at the top: a queued delivery is still
 * taken), -EINVAL (s NULL). */
MAY_API int may_signal_wait(may_signal_t *s, int64_t deadline);
/* The watcher's queue: a channel of int (the signal numbers), for select.
 * Receive only; it is closed and freed by may_signal_free. */
MAY_API may_chan_t *may_signal_chan(may_signal_t *s);
/* Deliveries dropped so far because the queue was full. */
MAY_API uint64_t may_signal_dropped(may_signal_t *s);
/* Stop watching and free the watcher (after every waiter has returned);
 * restores a signal's old disposition when s was its last watcher. */
MAY_API void may_signal_free(may_signal_t *s);

/* ==== END SIGNALS ======================================================= */

/* ==== BEGIN PROCESS (src/process.c, docs/PROCESS.md) ==================== */

/*
 * Child processes, as libuv's uv_spawn and Go's os/exec: spawn with argv,
 * environment, working directory and pipes; the pipes are ordinary fds
 * (non-blocking, close-on-exec in the parent; the first may_read /
 * may_write registers them with the poller as for any fd) that may_read /
 * may_write wait on; wait for the exit with a deadline; kill.
 *
 * The child gets descriptors 0, 1 and 2 as .stdio says and no other (every
 * descriptor from 3 up is closed in it, including any the program made
 * without close-on-exec), every signal at its default disposition and none
 * blocked.  The exit is watched through a pidfd where the kernel has one
 * (Linux 5.3), else through SIGCHLD (may_signal_new; only this library's
 * own children are reaped, never with waitpid(-1)).
 *
 * No zombie is left behind: a process freed before it was waited for is
 * reaped in the background when it ends, by a helper thread (not a
 * coroutine), so it never holds up may_shutdown.  Not supported: SIGCHLD
 * set to SIG_IGN, or a waitpid(-1) elsewhere in the program, which reap
 * these children behind the library's back (may_process_wait: -ECHILD).
 *
 * A write to a stdin pipe whose child has gone raises SIGPIPE, as
 * may_write does: ignore SIGPIPE (signal(SIGPIPE, SIG_IGN)) to get -EPIPE.
 *
 * Windows (src/win/process_win.c, docs/PROCESS.md "Windows"): CreateProcess
 * with the command line quoted by the MSVCRT rules; only the three stdio
 * handles are inherited; the pipes are read and written on the offload
 * pool (may_fd_wait on them: -ENOTSUP); the status is the exit code as it
 * is (no WIFEXITED); may_process_kill(p, sig > 0) terminates the child with
 * exit code 1, as Go and libuv do; a freed child keeps running.
 */
typedef struct may_process may_process_t;
#if defined(_WIN32) && !defined(SIGKILL)
#define SIGKILL 9 /* for may_process_kill (signal.h of MinGW lacks it) */
#endif

enum {
    MAY_STDIO_INHERIT = 0, /* the child shares the parent's descriptor */
    MAY_STDIO_PIPE = 1,    /* a pipe; the parent's end: may_process_stdio */
    MAY_STDIO_NULL = 2,    /* /dev/null */
    MAY_STDIO_FD = 3,      /* the descriptor given in .fd[i] (the parent's
                              stays open; it may be one of 0, 1, 2: .fd[2] = 1
                              with .stdio[1] INHERIT is "2>&1") */
};

typedef struct may_process_opts {
    const char *const *env; /* NULL-terminated "K=V" list; NULL: inherit */
    const char *cwd;        /* NULL: the parent's */
    int stdio[3];           /* MAY_STDIO_* for stdin, stdout, stderr */
    int fd[3];              /* with MAY_STDIO_FD */
    unsigned flags;         /* MAY_PROCESS_* */
} may_process_opts_t;

#define MAY_PROCESS_SETSID 1u   /* the child starts a new session */
#define MAY_PROCESS_NO_PIDFD 2u /* wait through SIGCHLD even where pidfd works
                                   (also: $MAY_NO_PIDFD=1 for every process) */

/* Spawn file with argv (argv[0] included, NULL-terminated).  A file without
 * a slash is looked up in the parent's $PATH (as Go's exec.LookPath;
 * "/bin:/usr/bin" when unset), one with a slash is taken relative to .cwd
 * when it is relative.  opts may be NULL (inherit everything).  0 with *p
 * set; or, with *p NULL: -EINVAL (bad arguments or flags), -EBADF (.fd[i]
 * negative), -ENOENT, -EACCES, -ENOEXEC... (the program is missing or not
 * executable, or its exec failed: the child's exec errno), -ENOENT,
 * -ENOTDIR (.cwd), -ENOMEM, -EMFILE, -EAGAIN (process limit), -errno.
 * Called from a coroutine, the worker is suspended until the child has
 * exec'd (vfork semantics; the call is bracketed as may_blocking_begin
 * does, so a slow one is handed off). */
MAY_API int may_process_spawn_sized(may_process_t **p, const char *file,
                                    const char *const argv[],
                                    const may_process_opts_t *opts, size_t opts_size);
#define may_process_spawn(p, file, argv, ...) \
    may_process_spawn_sized((p), (file), (argv), (__VA_ARGS__), sizeof(may_process_opts_t))
MAY_API pid_t may_process_pid(const may_process_t *p);
/* The parent's end of pipe i (0 stdin, 1 stdout, 2 stderr), or -1.  It
 * belongs to p: may_process_free closes it.  Close it earlier with
 * may_process_close_stdio (stdin: the child reads end of file), or take it
 * over with may_process_take_stdio and close it yourself (may_fd_close). */
MAY_API int may_process_stdio(const may_process_t *p, int i);
/* 0, -EBADF (no such pipe, or closed already), -EINVAL, -errno. */
MAY_API int may_process_close_stdio(may_process_t *p, int i);
/* Hand pipe i over to the caller (p forgets it): the fd, -EBADF, -EINVAL.
 * (Added to the first draft of this API: a pipe that outlives p, say
 * handed to another coroutine, and may_process_stdio's "taking it over",
 * need it.) */
MAY_API int may_process_take_stdio(may_process_t *p, int i);
/* Wait for the exit: 0 with *status (may be NULL) the wait status
 * (WIFEXITED...), -ETIMEDOUT, -ECANCELED, -ECHILD (reaped by someone else,
 * see above), -EINVAL.  Once it returned 0 it returns 0 again with the
 * same status; a child that has exited is reaped even by a cancelled
 * caller or with MAY_NOWAIT.  Any number of coroutines and threads may
 * wait at once. */
MAY_API int may_process_wait(may_process_t *p, int *status, int64_t deadline);
/* Send sig (0: only check): 0, -ESRCH once reaped (a pid that may be
 * another process's by now is never signalled), -EINVAL, -errno. */
MAY_API int may_process_kill(may_process_t *p, int sig);
/* Close the pipes p still owns and free p; a child still running is
 * reaped in the background when it ends (it is not killed: kill it first
 * if it should stop).  No call on p may be in progress or follow. */
MAY_API void may_process_free(may_process_t *p);

/* ==== END PROCESS ======================================================= */

#ifdef __cplusplus
}
#endif
#endif /* MAY_H */
