/* The blocking-offload pool: calls run on helper threads while the worker
 * runs other coroutines; results, saturation (-EAGAIN), deadline before the
 * start (-ETIMEDOUT, never runs), cancellation while queued and while
 * running (abandoned: no crash, no leak), plain threads, file I/O, shutdown
 * and restart.  Runs on a single worker, so any call that blocked the worker
 * would stop every other coroutine. */
#include "test.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#ifndef _WIN32
#include <sys/wait.h>
#endif
#include <unistd.h>

void may__offload_shutdown(void); /* internal: what may_shutdown calls */

/* ---- helpers ------------------------------------------------------------ */

#ifdef _WIN32
/* Windows has no /proc/self/task and the helpers' names (winpthreads') are
 * not the system's thread descriptions: the counts are not checked there;
 * -1 says so, and a wait for idle helpers to exit is a sleep. */
static int helper_threads(void)
{
    return -1;
}

static void wait_helpers_at_most(int n)
{
    (void)n;
    usleep(100000);
}
#else
/* Threads of this process named "may-offload" (the pool's helpers). */
static int helper_threads(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    ASSERT(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], line[64];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(line, sizeof line, f) && !strncmp(line, "may-offload", 11))
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Wait until at most n helper threads are left. */
static void wait_helpers_at_most(int n)
{
    int64_t end = may_deadline_in(TEST_MS(3000));
    while (helper_threads() > n) {
        ASSERT_LT(may_now(), end);
        usleep(1000);
    }
}
#endif

static pthread_t worker_thread;

static void *note_worker(void *arg)
{
    (void)arg;
    worker_thread = pthread_self();
    return NULL;
}

static void *add_one(void *arg)
{
    return (void *)((intptr_t)arg + 1);
}

/* A gate a job can block on with a plain blocking call (the kind of call
 * the pool is for). */
typedef struct {
    atomic_int started, open, finished;
} gate_t;

static void *gated(void *arg)
{
    gate_t *g = arg;
    atomic_store(&g->started, 1);
    while (!atomic_load(&g->open))
        usleep(1000);
    atomic_fetch_add(&g->finished, 1);
    return (void *)7;
}

static void wait_flag(atomic_int *f)
{
    int64_t end = may_deadline_in(TEST_MS(3000));
    while (!atomic_load(f)) {
        ASSERT_LT(may_now(), end);
        usleep(1000);
    }
}

/* ---- the job runs off the worker, which runs others meanwhile ----------- */

static atomic_long ticks;
static atomic_int sleeper_done;

static void *ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&sleeper_done)) {
        atomic_fetch_add(&ticks, 1);
        may_sleep(TEST_MS(1));
    }
    return NULL;
}

static void *sleep_200ms(void *arg)
{
    (void)arg;
    usleep(200000); /* blocks its thread: must not be a worker */
    return (void *)(uintptr_t)pthread_self();
}

static void *sleeper(void *arg)
{
    (void)arg;
    long before = atomic_load(&ticks);
    int64_t t0 = may_now();
    void *res = NULL;
    ASSERT_EQ(may_offload(sleep_200ms, NULL, &res, MAY_FOREVER), 0);
    ASSERT_GE(may_now() - t0, TEST_MS(190));
    ASSERT(!pthread_equal((pthread_t)(uintptr_t)res, worker_thread));
    ASSERT(!pthread_equal((pthread_t)(uintptr_t)res, pthread_self()));
    long during = atomic_load(&ticks) - before;
    atomic_store(&sleeper_done, 1);
    return (void *)(intptr_t)during;
}

static void test_off_worker(void)
{
    may_co_t *w, *t, *s;
    ASSERT_EQ(may_spawn(&w, note_worker, NULL, NULL), 0);
    ASSERT_EQ(may_join(w, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_spawn(&t, ticker, NULL, NULL), 0);
    ASSERT_EQ(may_spawn(&s, sleeper, NULL, NULL), 0);
    void *during;
    ASSERT_EQ(may_join(s, &during, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(t, NULL, MAY_FOREVER), MAY_DONE);
    printf("off worker: %ld ticks of another coroutine during a 200 ms call\n",
           (long)(intptr_t)during);
    /* 1 ms ticks over 200 ms; slow builds (valgrind, qemu) get far fewer */
    ASSERT_GE((intptr_t)during, 10);
}

/* ---- results, many at once ---------------------------------------------- */

static atomic_long sum;

static void *adder(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        void *r = NULL;
        ASSERT_EQ(may_offload(add_one, (void *)(intptr_t)i, &r, MAY_FOREVER), 0);
        ASSERT_EQ((intptr_t)r, i + 1);
        atomic_fetch_add(&sum, (long)(intptr_t)r);
    }
    return NULL;
}

static void test_results(void)
{
    enum { N = 8 };
    long per = test_scale(200);
    may_co_t *c[N];
    for (int i = 0; i < N; i++)
        ASSERT_EQ(may_spawn(&c[i], adder, (void *)(intptr_t)per, NULL), 0);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(atomic_load(&sum), N * (per * (per + 1) / 2));
    void *r = (void *)1;
    ASSERT_EQ(may_offload(NULL, NULL, &r, MAY_FOREVER), -EINVAL);
    ASSERT_EQ(may_offload(add_one, NULL, &r, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(may_offload(add_one, NULL, NULL, MAY_FOREVER), 0); /* result optional */
}

/* ---- bounded: saturation, deadline before start, cancel ---------------- */

typedef struct {
    void *(*fn)(void *);
    void *arg;
    int64_t deadline;
    int ret;
    void *res;
} call_t;

static void *caller(void *arg)
{
    call_t *c = arg;
    c->ret = may_offload(c->fn, c->arg, &c->res, c->deadline);
    return NULL;
}

static atomic_int drops, drops_ran;

static void count_drop(void *arg, void *result, bool ran)
{
    (void)result;
    free(arg);
    atomic_fetch_add(&drops, 1);
    if (ran)
        atomic_fetch_add(&drops_ran, 1);
}

static atomic_int sleeps_started, callers_entered;

static void *owned_sleep(void *arg)
{
    int *ms = arg;
    atomic_fetch_add(&sleeps_started, 1);
    usleep((useconds_t)*ms * 1000);
    return NULL;
}

static void *ex_caller(void *arg)
{
    int ms = (int)(intptr_t)arg;
    atomic_fetch_add(&callers_entered, 1);
    int *a = malloc(sizeof *a);
    *a = ms;
    int r = may_offload_ex(owned_sleep, a, NULL, count_drop, MAY_FOREVER);
    if (r == 0)
        free(a); /* on success arg is still ours */
    return (void *)(intptr_t)r;
}

static void *self_cancel(void *arg)
{
    (void)arg;
    may_cancel(may_self());
    int *a = malloc(sizeof *a);
    *a = 0;
    int before = atomic_load(&sleeps_started);
    ASSERT_EQ(may_offload_ex(owned_sleep, a, NULL, count_drop, MAY_FOREVER), -ECANCELED);
    ASSERT_EQ(atomic_load(&sleeps_started), before); /* never ran */
    return NULL;
}

static void test_bounds(void)
{
    ASSERT_EQ(may_offload_config(1, 1), 0);
    ASSERT_EQ(may_offload_config(-1, 0), -EINVAL);
    wait_helpers_at_most(1); /* idle helpers above the new maximum exit */
    gate_t g = { 0 };
    /* A runs on the only helper; B waits in the queue. */
    call_t a = { .fn = gated, .arg = &g, .deadline = MAY_FOREVER };
    may_co_t *ca, *cb;
    ASSERT_EQ(may_spawn(&ca, caller, &a, NULL), 0);
    wait_flag(&g.started);
    gate_t gb = { 0 };
    call_t b = { .fn = gated, .arg = &gb, .deadline = MAY_FOREVER };
    /* One worker runs coroutines spawned from here in order: B queues its
     * call (and parks) before P probes the full pool. */
    call_t p = { .fn = add_one, .deadline = may_deadline_in(TEST_MS(1000)) };
    may_co_t *cp;
    ASSERT_EQ(may_spawn(&cb, caller, &b, NULL), 0);
    ASSERT_EQ(may_spawn(&cp, caller, &p, NULL), 0);
    ASSERT_EQ(may_join(cp, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(p.ret, -EAGAIN);
    int64_t t0 = may_now();
    ASSERT_EQ(may_offload(add_one, NULL, NULL, may_deadline_in(TEST_MS(1000))), -EAGAIN);
    ASSERT_LT(may_now() - t0, TEST_MS(500));
    ASSERT(!atomic_load(&gb.started));

    /* Room for one more waiter: a call whose deadline passes in the queue
     * is removed and never runs. */
    ASSERT_EQ(may_offload_config(1, 2), 0);
    gate_t gc = { 0 };
    atomic_store(&gc.open, 1);
    t0 = may_now();
    ASSERT_EQ(may_offload(gated, &gc, NULL, may_deadline_in(TEST_MS(50))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(45));
    /* cancelled while queued: never runs; may_offload_ex drops arg */
    may_co_t *cq;
    ASSERT_EQ(may_spawn(&cq, ex_caller, (void *)(intptr_t)1, NULL), 0);
    wait_flag(&callers_entered); /* cancelled before or while it queues */
    usleep(10000);
    ASSERT_EQ(may_cancel(cq), 0);
    void *res;
    ASSERT_EQ(may_join(cq, &res, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)res, -ECANCELED);
    ASSERT_EQ(atomic_load(&drops), 1);
    ASSERT_EQ(atomic_load(&drops_ran), 0);

    atomic_store(&g.open, 1);
    atomic_store(&gb.open, 1);
    ASSERT_EQ(may_join(ca, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(cb, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(a.ret, 0);
    ASSERT_EQ(b.ret, 0);
    ASSERT_EQ((intptr_t)a.res, 7);
    ASSERT_EQ(atomic_load(&gc.finished), 0); /* the timed-out call never ran */

    /* Cancelled while running: returns at once; the job is abandoned, runs
     * to its end on the helper and drop frees its argument there. */
    ASSERT_EQ(may_offload_config(0, 0), 0);
    may_co_t *cr;
    ASSERT_EQ(may_spawn(&cr, ex_caller, (void *)(intptr_t)500, NULL), 0);
    wait_flag(&sleeps_started);
    t0 = may_now();
    ASSERT_EQ(may_cancel(cr), 0);
    ASSERT_EQ(may_join(cr, &res, MAY_FOREVER), MAY_CANCELED);
    ASSERT_LT(may_now() - t0, TEST_MS(300));
    ASSERT_EQ((intptr_t)res, -ECANCELED);
    ASSERT_EQ(atomic_load(&drops), 1); /* not yet: the job still runs */
    int64_t end = may_deadline_in(TEST_MS(3000));
    while (atomic_load(&drops) < 2) {
        ASSERT_LT(may_now(), end);
        usleep(1000);
    }
    ASSERT_EQ(atomic_load(&drops_ran), 1);

    /* A cancelled coroutine fails at once, before anything is queued. */
    ASSERT_EQ(may_spawn(&cr, self_cancel, NULL, NULL), 0);
    ASSERT_EQ(may_join(cr, NULL, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ(atomic_load(&drops), 3);
    ASSERT_EQ(atomic_load(&drops_ran), 1);
}

/* ---- a deadline passing while the call runs: abandoned ----------------- */

static void *abandon_caller(void *arg)
{
    (void)arg;
    int *a = malloc(sizeof *a);
    *a = 400;
    int64_t t0 = may_now();
    int r = may_offload_ex(owned_sleep, a, NULL, count_drop, may_deadline_in(TEST_MS(30)));
    ASSERT_LT(may_now() - t0, TEST_MS(300));
    return (void *)(intptr_t)r;
}

static void test_abandon_deadline(void)
{
    int before = atomic_load(&drops);
    may_co_t *c;
    void *res;
    ASSERT_EQ(may_spawn(&c, abandon_caller, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, &res, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)res, -ETIMEDOUT);
    /* shutdown waits for the abandoned job: drop has run afterwards */
    may__offload_shutdown();
    ASSERT_EQ(atomic_load(&drops), before + 1);
}

/* ---- plain threads ------------------------------------------------------ */

static void *thread_main(void *arg)
{
    (void)arg;
    void *r = NULL;
    for (int i = 0; i < 20; i++) {
        ASSERT_EQ(may_offload(add_one, (void *)(intptr_t)i, &r, MAY_FOREVER), 0);
        ASSERT_EQ((intptr_t)r, i + 1);
    }
    return NULL;
}

static void test_plain_thread(void)
{
    /* the main thread itself */
    void *r = NULL;
    ASSERT_EQ(may_offload(add_one, (void *)41, &r, MAY_FOREVER), 0);
    ASSERT_EQ((intptr_t)r, 42);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, thread_main, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    /* a deadline from a thread: abandoned after 30 ms of a 400 ms call */
    int before = atomic_load(&drops);
    int *a = malloc(sizeof *a);
    *a = 400;
    int64_t t0 = may_now();
    ASSERT_EQ(may_offload_ex(owned_sleep, a, NULL, count_drop, may_deadline_in(TEST_MS(30))),
              -ETIMEDOUT);
    ASSERT_LT(may_now() - t0, TEST_MS(300));
    may__offload_shutdown();
    ASSERT_EQ(atomic_load(&drops), before + 1);
}

/* ---- file I/O ----------------------------------------------------------- */

#ifdef _WIN32
/* fds are handle values on Windows (docs/WINDOWS.md), not the CRT's */
static long long fd_seek(int fd, long long off)
{
    LARGE_INTEGER d = { .QuadPart = off }, at;
    return SetFilePointerEx((HANDLE)(intptr_t)fd, d, &at, FILE_BEGIN) ? at.QuadPart : -1;
}
#define fd_close(fd) may_fd_close(fd)
#else
#define fd_seek(fd, off) lseek(fd, off, SEEK_SET)
#define fd_close(fd) close(fd)
#endif

static void *file_co(void *arg)
{
    const char *path = arg;
    int fd = may_file_open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600, MAY_FOREVER);
    ASSERT_GE(fd, 0);
    char buf[4096];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(i * 7);
    ASSERT_EQ(may_file_write(fd, buf, sizeof buf, -1, MAY_FOREVER), (long)sizeof buf);
    ASSERT_EQ(may_file_write(fd, "hello", 5, 100, MAY_FOREVER), 5);
    ASSERT_EQ(may_file_fsync(fd, MAY_FOREVER), 0);
    char in[sizeof buf];
    ASSERT_EQ(may_file_read(fd, in, sizeof in, 0, MAY_FOREVER), (long)sizeof in);
    memcpy(buf + 100, "hello", 5);
    ASSERT_EQ(memcmp(in, buf, sizeof buf), 0);
    /* -1: at the file offset, which is at the end after the first write */
    ASSERT_EQ(may_file_read(fd, in, sizeof in, -1, MAY_FOREVER), 0);
    ASSERT_EQ(fd_seek(fd, 10), 10);
    ASSERT_EQ(may_file_read(fd, in, 3, -1, MAY_FOREVER), 3);
    ASSERT_EQ(memcmp(in, buf + 10, 3), 0);
    ASSERT_EQ(fd_close(fd), 0);
    /* errors are -errno */
    ASSERT_EQ(may_file_read(fd, in, 1, 0, MAY_FOREVER), -EBADF);
    ASSERT_EQ(may_file_read(-1, in, 1, 0, MAY_FOREVER), -EINVAL);
    ASSERT_EQ(may_file_open("/nonexistent/dir/x", O_RDONLY, 0, MAY_FOREVER), -ENOENT);
    ASSERT_EQ(may_file_open(NULL, O_RDONLY, 0, MAY_FOREVER), -EINVAL);
    ASSERT_EQ(may_file_open(path, O_RDONLY, 0, MAY_NOWAIT), -ETIMEDOUT);
    ASSERT_EQ(unlink(path), 0);
    return NULL;
}

static void test_files(void)
{
#ifdef _WIN32 /* no /tmp */
    static char path[MAX_PATH + 32];
    int fd = test_tmp_mkstemp(path, "may-offload-XXXXXX");
#else
    char path[] = "/tmp/may-offload-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
#endif
    close(fd);
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, file_co, path, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
}

/* ---- fork: the child starts with an empty pool ------------------------- */

#if defined(_WIN32)
/* test_fork skips */
#elif defined(__SANITIZE_THREAD__)
static const int under_tsan = 1;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
static const int under_tsan = 1;
#else
static const int under_tsan = 0;
#endif
#else
static const int under_tsan = 0;
#endif

static void test_fork(void)
{
#ifdef _WIN32
    printf("skip: fork (none on Windows)\n");
#else
    if (under_tsan)
        return; /* TSan kills a multi-threaded fork's child that makes threads */
    /* qemu-user asserts when a multi-threaded fork's child makes a thread;
     * under it the process's own name is the emulator's */
    char line[64] = "";
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
    }
    if (strstr(line, "qemu-"))
        return;
    void *r = NULL;
    ASSERT_EQ(may_offload(add_one, (void *)1, &r, MAY_FOREVER), 0); /* helpers exist */
    fflush(stdout);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        /* the main thread is a plain thread here too; the parent's helpers
         * are gone, so this must start a new one */
        r = NULL;
        int rc = may_offload(add_one, (void *)2, &r, may_deadline_in(TEST_MS(2000)));
        if (rc != 0 || (intptr_t)r != 3)
            fprintf(stderr, "child: may_offload %d, result %ld\n", rc, (long)(intptr_t)r);
        _exit(rc == 0 && (intptr_t)r == 3 ? 0 : 1);
    }
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
#endif
}

int main(void)
{
    /* no hand-off: the pool-full case relies on one thread running the
     * coroutines spawned from here in order (qemu made false hand-offs) */
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 1, .no_handoff = true }), 0);
    ASSERT_EQ(may_start(), 0);
    test_off_worker();
    test_results();
    test_bounds();
    test_abandon_deadline();
    test_plain_thread();
    test_files();
    test_fork();
    /* shutdown joins the helpers; the pool starts again on next use */
    may__offload_shutdown();
    wait_helpers_at_most(0); /* joined: their tasks are on the way out */
    void *r = NULL;
    ASSERT_EQ(may_offload(add_one, (void *)1, &r, MAY_FOREVER), 0);
    ASSERT_EQ((intptr_t)r, 2);
    int helpers = helper_threads();
    ASSERT(helpers == 1 || (helpers == -1 && printf("skip: helper thread counts (no /proc)\n")));
    may__offload_shutdown();
    wait_helpers_at_most(0);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
