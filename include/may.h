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
 * deadline: in a cancelled coroutine every blocking call fails with
 * -ECANCELED at once, even if its deadline has passed too.
 *
 * Options structs may grow at the end in later versions: initialise them with
 * a designated initialiser ({ .name = "x" }) so new fields start at zero.
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

#if defined(MAY_BUILDING) && defined(__GNUC__)
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
} may_config_t;

/* Set the configuration.  Only before the runtime has started (it starts
 * lazily on first use); -EBUSY afterwards, -EINVAL for bad values. */
MAY_API int may_configure(const may_config_t *cfg);
/* Start the runtime now (otherwise the first spawn does).  0 or -errno. */
MAY_API int may_start(void);
/* Stop the worker threads and free every cached resource.  -EBUSY while
 * coroutines are alive (joined or detached ones that have not ended).  The
 * runtime starts again lazily on next use.  Not from a coroutine (-EPERM). */
MAY_API int may_shutdown(void);
/* Number of worker threads (starts the runtime). */
MAY_API int may_workers(void);
/* Index of the worker running the caller, or -1 on a plain thread. */
MAY_API int may_worker_id(void);

/* ------------------------------------------------------------------------ */
/* Coroutines                                                               */
/* ------------------------------------------------------------------------ */

typedef struct may_co may_co_t;      /* opaque coroutine handle */
typedef void *(*may_fn_t)(void *arg); /* entry: its result is join's result */

enum {
    MAY_SPAWN_DETACHED = 1 << 0, /* no join; resources freed at its end */
    MAY_SPAWN_WORKER = 1 << 1,   /* start on worker .worker (then stealable) */
    MAY_SPAWN_PINNED = 1 << 2,   /* run only on worker .worker, never stolen;
                                    for code that relies on thread-locals */
};

typedef struct may_spawn_opts {
    const char *name;  /* copied; at most 31 bytes kept; NULL: no name */
    size_t stack_size; /* 0: the configured default */
    int worker;        /* with MAY_SPAWN_WORKER / MAY_SPAWN_PINNED */
    unsigned flags;    /* MAY_SPAWN_* */
} may_spawn_opts_t;

/* Spawn a coroutine running fn(arg).  *co receives the handle (may be NULL
 * when MAY_SPAWN_DETACHED).  0, -EINVAL, -ENOMEM, or -ECANCELED when the
 * caller's scope owner was cancelled. */
MAY_API int may_spawn(may_co_t **co, may_fn_t fn, void *arg,
                      const may_spawn_opts_t *opts);
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
 * itself).  result may be NULL. */
MAY_API int may_join(may_co_t *co, int64_t deadline, void **result);
/* Let co free itself when it ends; the handle must not be used after. */
MAY_API int may_detach(may_co_t *co);

/* Ask co to stop: its current and every later blocking call fails with
 * -ECANCELED.  If it has not started yet it never runs.  Cancelling a
 * finished or already cancelled coroutine does nothing.  Children in scopes
 * that co owns are cancelled too.  0 or -EINVAL. */
MAY_API int may_cancel(may_co_t *co);
/* True when the calling coroutine has been cancelled. */
MAY_API bool may_cancelled(void);

/* Let other coroutines run; from a plain thread, sched_yield(). */
MAY_API void may_yield(void);
/* Sleep until the deadline.  0, or -ECANCELED. */
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
/* Bytes of stack co has used at most; needs track_stack (else -ENOTSUP). */
MAY_API long may_co_stack_used(const may_co_t *co);

/* ------------------------------------------------------------------------ */
/* Ending a coroutine from any depth                                        */
/* ------------------------------------------------------------------------ */

/* End the calling coroutine with result, after running its cleanup
 * handlers and coroutine-local destructors.  On a plain thread:
 * pthread_exit(result). */
MAY_API _Noreturn void may_exit(void *result);
/* Print "may: coroutine <id> "<name>" panicked: <message>" on stderr and end
 * the calling coroutine (cleanup handlers and destructors run; every other
 * coroutine runs on; join reports MAY_PANICKED).  On a plain thread: print
 * and abort(). */
MAY_API _Noreturn void may_panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Cleanup handlers, like pthread_cleanup_push/pop: run in LIFO order by
 * may_exit, may_panic and a normal return.  The node lives in the caller's
 * frame; pushes and pops must pair in one function. */
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
MAY_API int may_scope_spawn(may_scope_t *scope, may_fn_t fn, void *arg,
                            const may_spawn_opts_t *opts);
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
/* Free the generator.  An unfinished generator's stack is discarded without
 * running more of its code. */
MAY_API void may_gen_free(may_gen_t *gen);

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

typedef struct may_worker_stats {
    uint64_t switches;  /* context switches into coroutines */
    uint64_t spawns;    /* coroutines spawned here */
    uint64_t steals;    /* coroutines stolen from other workers */
    uint64_t parks;     /* times this worker went to sleep */
} may_worker_stats_t;

typedef struct may_stats {
    uint64_t alive;     /* coroutines spawned and not yet ended */
    uint64_t spawned;   /* coroutines spawned since start */
    uint64_t timers;    /* armed timers */
    uint64_t switches, steals; /* totals over workers */
    int workers;
    may_worker_stats_t worker[64]; /* the first 64 workers */
} may_stats_t;
MAY_API void may_stats(may_stats_t *out);

/* ==== BEGIN SYNC (synchronisation, channels, select) ==================== */
/* ==== END SYNC ========================================================== */

#ifdef __cplusplus
}
#endif
#endif /* MAY_H */
