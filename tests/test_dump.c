/* may_dump, may_dump_on_signal and the counts of may_stats: coroutines
 * parked in known places are listed with their state, what they wait on
 * and a backtrace through the function that blocked.  On Windows the dump
 * gives module+offset, no symbol names: the frames are checked by address;
 * may_dump_on_signal is -ENOTSUP there (docs/WINDOWS.md). */
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

static may_chan_t *ch;
static may_mutex_t *mu;
static int pipefd[2]; /* a loopback TCP pair on Windows (test.h) */
static int lfd; /* a listener that dump_accept_fn waits on */
static atomic_int started;

/* Exported (the test links with -rdynamic) and never inlined, so dladdr
 * names them in the backtraces. */
__attribute__((noinline)) void *dump_recv_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&started, 1);
    int v;
    int r = may_chan_recv(ch, &v, MAY_FOREVER);
    __asm__ volatile("" ::: "memory"); /* keep this frame: no tail call */
    return (void *)(intptr_t)r;
}

__attribute__((noinline)) void *dump_sleep_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&started, 1);
    int r = may_sleep(TEST_MS(60000));
    __asm__ volatile("" ::: "memory");
    return (void *)(intptr_t)r;
}

__attribute__((noinline)) void *dump_lock_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&started, 1);
    int r = may_mutex_lock(mu, MAY_FOREVER);
    if (r == 0)
        may_mutex_unlock(mu);
    __asm__ volatile("" ::: "memory");
    return (void *)(intptr_t)r;
}

__attribute__((noinline)) void *dump_fd_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&started, 1);
    int r = may_fd_wait(pipefd[0], MAY_READ, may_deadline_in(TEST_MS(60000)));
    __asm__ volatile("" ::: "memory");
    return (void *)(intptr_t)r;
}

/* may_tcp_accept parks on the listener: the dump must name its fd (it
 * printed 18446744073709551615, the -1 that accept4 had returned). */
__attribute__((noinline)) void *dump_accept_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&started, 1);
    int r = may_tcp_accept(lfd, NULL, may_deadline_in(TEST_MS(60000)));
    __asm__ volatile("" ::: "memory");
    return (void *)(intptr_t)r;
}

static void *quick_fn(void *arg)
{
    return arg;
}

#ifdef _WIN32
/* no open_memstream or strndup: the dump goes to a file in the temp
 * directory, read back */
static char *dump_text(long *n)
{
    char path[MAX_PATH + 32];
    int fd = test_tmp_mkstemp(path, "may-dump-XXXXXX");
    FILE *f = fdopen(fd, "w+b");
    ASSERT(f);
    *n = may_dump(f);
    long len = ftell(f);
    ASSERT_GE(len, 0);
    char *buf = calloc(1, (size_t)len + 1);
    rewind(f);
    ASSERT_EQ(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    ASSERT_EQ(unlink(path), 0);
    return buf;
}

static char *strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    ASSERT(d);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}
#else
static char *dump_text(long *n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f);
    *n = may_dump(f);
    fclose(f);
    return buf;
}
#endif

static char *dump_string(void)
{
    long n;
    char *buf = dump_text(&n);
    ASSERT_GE(n, 5);
    return buf;
}

/* The block of the dump about coroutine `name`, up to the next one. */
static char *section(const char *dump, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\" [", name);
    const char *p = strstr(dump, key);
    if (!p) {
        fprintf(stderr, "no coroutine %s in the dump:\n%s\n", name, dump);
        abort();
    }
    while (p > dump && p[-1] != '\n')
        p--;
    const char *e = strstr(p + 1, "\ncoroutine ");
    if (!e)
        e = p + strlen(p);
    return strndup(p, (size_t)(e - p));
}

static void expect(const char *sec, const char *what)
{
    if (!strstr(sec, what)) {
        fprintf(stderr, "expected \"%s\" in:\n%s\n", what, sec);
        abort();
    }
}

#ifdef _WIN32
/* Windows: the entry is "entry 0x<fn> (<path>test_dump.exe+0x<off>)", and
 * the frames "#i  0x<pc> (<path>+0x<off>)" (no symbol names): a function is
 * found in the trace by address, one frame's pc within its extent from the
 * unwind tables (RtlLookupFunctionEntry), the ones the dump walks. */
static void expect_entry(const char *sec, void *fn)
{
    char want[64];
    snprintf(want, sizeof want, "entry 0x%llx (", (unsigned long long)(uintptr_t)fn);
    expect(sec, want);
    expect(strstr(sec, want), "test_dump.exe+0x");
}
/* The frame of the trace in sec whose pc lies in fn, or NULL. */
static const char *in_frames(const char *sec, void *fn)
{
    DWORD64 image = 0;
    PRUNTIME_FUNCTION rf = RtlLookupFunctionEntry((DWORD64)(uintptr_t)fn, &image, NULL);
    ASSERT(rf != NULL);
    uintptr_t begin = (uintptr_t)image + rf->BeginAddress, end = (uintptr_t)image + rf->EndAddress;
    ASSERT_EQ(begin, (uintptr_t)fn);
    for (const char *f = strstr(sec, "    #"); f; f = strstr(f + 1, "    #")) {
        const char *x = f + 5;
        while (*x >= '0' && *x <= '9')
            x++;
        while (*x == ' ')
            x++;
        if (strncmp(x, "0x", 2))
            continue;
        uintptr_t pc = (uintptr_t)strtoull(x, NULL, 16);
        if (pc > begin && pc < end) /* a return address: past the call */
            return f;
    }
    return NULL;
}
#define EXPECT_TRACE(sec) expect(sec, "    #1  0x")
/* The stack size after "] stack ": the usable bytes on Windows (at most
 * the requested size, less by the header and page rounding: docs/WINDOWS.md),
 * here for the default 64 KiB. */
static void expect_stack_size(const char *sec)
{
    const char *p = strstr(sec, "] stack ");
    ASSERT(p != NULL);
    long size = strtol(p + strlen("] stack "), NULL, 10);
    ASSERT_LE(size, 65536);
    ASSERT_GE(size, 65536 - 2 * 4096 - 64);
}
#define EXPECT_STACK_SIZE(sec) expect_stack_size(sec)
#define EXPECT_FN(sec, fn) expect_entry(sec, (void *)fn)
#define IN_FRAME0(sec, fn) in_frames(sec, (void *)fn)
#else
#define EXPECT_FN(sec, fn) expect(sec, #fn)
#define IN_FRAME0(sec, fn) strstr(strstr(sec, "#0"), #fn)
#define EXPECT_TRACE(sec) expect(sec, "#1 ")
#define EXPECT_STACK_SIZE(sec) ((void)0)
#endif

static void check_dump(const char *d)
{
    char *s = section(d, "receiver");
    expect(s, "[parked: chan recv 0x");
    expect(s, "entry 0x");
    EXPECT_FN(s, dump_recv_fn);          /* entry, and a frame of the trace */
    EXPECT_TRACE(s);                     /* a backtrace of more than one frame */
    ASSERT(IN_FRAME0(s, dump_recv_fn));  /* the blocking frame */
    EXPECT_STACK_SIZE(s);                /* the size as the reports give it */
    free(s);
    s = section(d, "sleeper");
    expect(s, "[parked: sleep, with deadline]");
    EXPECT_FN(s, dump_sleep_fn);
    free(s);
    s = section(d, "locker");
    expect(s, "[parked: mutex 0x");
    ASSERT(IN_FRAME0(s, dump_lock_fn));
    free(s);
    s = section(d, "fd-waiter");
    char fdw[64];
    snprintf(fdw, sizeof fdw, "[parked: fd read %d, with deadline", pipefd[0]);
    expect(s, fdw);
    ASSERT(IN_FRAME0(s, dump_fd_fn));
    free(s);
    s = section(d, "acceptor");
    snprintf(fdw, sizeof fdw, "[parked: fd read %d, with deadline", lfd);
    expect(s, fdw);
    ASSERT(IN_FRAME0(s, dump_accept_fn));
    free(s);
    s = section(d, "ended");
    expect(s, "[ended, not joined]");
    free(s);
    expect(d, "worker 0: ");
    expect(d, "worker 1: ");
}

int main(void)
{
    ASSERT_EQ(may_dump(NULL), -EINVAL);
#ifdef _WIN32 /* no POSIX signals */
    ASSERT_EQ(may_dump_on_signal(SIGINT), -ENOTSUP);
    ASSERT_EQ(may_dump_on_signal(SIGTERM), -ENOTSUP);
    ASSERT_EQ(may_dump_on_signal(0), -ENOTSUP);
#else
    ASSERT_EQ(may_dump_on_signal(SIGKILL), -EINVAL);
    ASSERT_EQ(may_dump_on_signal(SIGSEGV), -EINVAL);
    ASSERT_EQ(may_dump_on_signal(-1), -EINVAL);
#endif
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2 }), 0);
    ASSERT_EQ(may_chan_make(&ch, int, 0), 0);
    ASSERT_EQ(may_mutex_new(&mu), 0);
    ASSERT_EQ(test_fd_pipe(pipefd), 0);
    lfd = may_tcp_listen("127.0.0.1:0", 4, 0);
    ASSERT_GE(lfd, 0);
    ASSERT_EQ(may_mutex_lock(mu, MAY_FOREVER), 0); /* held by main: locker waits */

    static const struct {
        const char *name;
        may_fn_t fn;
    } specs[] = {
        { "receiver", dump_recv_fn },
        { "sleeper", dump_sleep_fn },
        { "locker", dump_lock_fn },
        { "fd-waiter", dump_fd_fn },
        { "acceptor", dump_accept_fn },
    };
    may_co_t *cos[5], *ended;
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(may_spawn(&cos[i], specs[i].fn, NULL, &(may_spawn_opts_t){ .name = specs[i].name }), 0);
    ASSERT_EQ(may_spawn(&ended, quick_fn, NULL, &(may_spawn_opts_t){ .name = "ended" }), 0);
    /* wait until all five are parked: may_stats says so */
    may_stats_t st;
    for (int tries = 0;; tries++) {
        may_stats(&st);
        if (atomic_load(&started) == 5 && st.parked >= 5 && st.fd_waiters >= 2 && st.timers >= 3 &&
            st.running == 0)
            break;
        ASSERT_LT(tries, 10000);
        usleep(1000);
    }
    usleep(20000); /* "ended" has surely ended */
    may_stats(&st); /* (the loop's last look may predate its end) */
    ASSERT_EQ(st.workers, 2);
    ASSERT_EQ(st.alive, 5); /* five parked; "ended" no longer counts */
    ASSERT_EQ(st.runnable, 0);
    ASSERT_EQ(st.worker[0].running, 0);
    ASSERT_EQ(st.worker[0].spawns + st.worker[1].spawns, 0); /* main is not a worker */
    ASSERT_EQ(st.spawned, 6);

    char *d = dump_string();
    check_dump(d);
    free(d);

    /* The same through a signal, written to stderr. */
#ifdef _WIN32
    printf("skip: the dump through a signal (no POSIX signals on Windows: "
           "may_dump_on_signal is -ENOTSUP, checked above)\n");
#else
    fflush(stderr);
    char path[] = "/tmp/may-dump-XXXXXX";
    int tmp = mkstemp(path);
    ASSERT_GE(tmp, 0);
    int saved = dup(2);
    ASSERT_EQ(may_dump_on_signal(SIGUSR1), 0);
    ASSERT_EQ(dup2(tmp, 2), 2);
    raise(SIGUSR1);
    ASSERT_EQ(dup2(saved, 2), 2);
    close(saved);
    ASSERT_EQ(may_dump_on_signal(0), 0);
    off_t len = lseek(tmp, 0, SEEK_END);
    ASSERT_GT(len, 0);
    char *sd = calloc(1, (size_t)len + 1);
    ASSERT_EQ(pread(tmp, sd, (size_t)len, 0), len);
    close(tmp);
    unlink(path);
    expect(sd, "may: coroutine dump (signal)");
    check_dump(sd);
    free(sd);
    /* turned off: the default action of SIGUSR1 would now kill us */
    struct sigaction sa;
    ASSERT_EQ(sigaction(SIGUSR1, NULL, &sa), 0);
    ASSERT(sa.sa_handler == SIG_DFL);
#endif

    /* Wake them all and check the state changes are seen. */
    ASSERT_EQ(may_cancel(cos[0]), 0);
    ASSERT_EQ(may_cancel(cos[1]), 0);
    ASSERT_EQ(may_mutex_unlock(mu), 0);
    ASSERT_EQ(test_fd_write_raw(pipefd[1], pipefd[0], "x", 1), 1);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", may_tcp_local_port(lfd));
    int cfd = may_tcp_connect(addr, may_deadline_in(TEST_MS(5000)));
    ASSERT_GE(cfd, 0);
    void *res;
    ASSERT_EQ(may_join(cos[0], &res, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)res, -ECANCELED);
    ASSERT_EQ(may_join(cos[1], &res, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ(may_join(cos[2], &res, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)res, 0);
    ASSERT_EQ(may_join(cos[3], &res, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ((intptr_t)res, MAY_READ);
    ASSERT_EQ(may_join(cos[4], &res, MAY_FOREVER), MAY_DONE);
    ASSERT_GE((intptr_t)res, 0); /* the accepted connection */
    ASSERT_EQ(may_fd_close((int)(intptr_t)res), 0);
    ASSERT_EQ(may_fd_close(cfd), 0);
    ASSERT_EQ(may_fd_close(lfd), 0);
    ASSERT_EQ(may_join(ended, NULL, MAY_FOREVER), MAY_DONE);

    /* Nothing left: the dump lists no coroutine. */
    long n;
    char *buf = dump_text(&n);
    ASSERT_EQ(n, 0);
    ASSERT(strstr(buf, "may: 0 coroutines"));
    free(buf);
    may_stats(&st);
    ASSERT_EQ(st.alive, 0);
    ASSERT_EQ(st.parked, 0);
    ASSERT_EQ(st.fd_waiters, 0);

    may_fd_close(pipefd[0]);
    test_fd_close(pipefd[1]);
    may_chan_free(ch);
    may_mutex_free(mu);
    ASSERT_EQ(may_shutdown(), 0);
    printf("test_dump: ok\n");
    return 0;
}
