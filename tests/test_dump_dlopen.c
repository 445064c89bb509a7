/* The dump signal while another thread is inside dlopen().  The dynamic
 * loader holds its lock while it runs a new object's constructors, which
 * may take any time; a dump handler that took that lock (dladdr does)
 * would wait for them, and here the constructor waits for the dump: it
 * gives up after 10 s, so such a handler would finish only then.  The
 * handler must name functions without the loader's lock (src/debug.c), so
 * the dump completes at once, with the names. */
#include "test.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int in_ctor, dump_done, ctor_gave_up;

/* Called by the plugin's constructor, under the loader's lock. */
void dump_dlopen_in_ctor(void)
{
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += 10;
    pthread_mutex_lock(&mu);
    in_ctor = 1;
    pthread_cond_broadcast(&cv);
    while (!dump_done && !ctor_gave_up)
        if (pthread_cond_timedwait(&cv, &mu, &end) != 0)
            ctor_gave_up = 1;
    pthread_mutex_unlock(&mu);
}

static void *opener(void *arg)
{
    (void)arg;
    void *h = dlopen(DUMP_DLOPEN_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        abort();
    }
    dlclose(h);
    return NULL;
}

static may_chan_t *ch;
static atomic_int started;

/* Exported and never inlined: the dump names it. */
__attribute__((noinline)) void *dump_dlopen_blocked_fn(void *arg)
{
    (void)arg;
    atomic_store(&started, 1);
    int v;
    int r = may_chan_recv(ch, &v, MAY_FOREVER);
    __asm__ volatile("" ::: "memory"); /* keep this frame: no tail call */
    return (void *)(intptr_t)r;
}

int main(void)
{
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 1 }), 0);
    ASSERT_EQ(may_chan_make(&ch, int, 0), 0);
    may_co_t *co;
    ASSERT_EQ(may_spawn(&co, dump_dlopen_blocked_fn, NULL, NULL), 0);
    for (;;) { /* parked in the receive */
        may_stats_t st;
        may_stats(&st);
        if (atomic_load(&started) && st.parked == 1)
            break;
        usleep(1000);
    }

    /* A thread in dlopen, stopped in the plugin's constructor. */
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, opener, NULL), 0);
    pthread_mutex_lock(&mu);
    while (!in_ctor)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);

    /* The dump, to a file in place of stderr. */
    fflush(stderr);
    char path[] = "/tmp/may-dump-dlopen-XXXXXX";
    int tmp = mkstemp(path);
    ASSERT_GE(tmp, 0);
    int saved = dup(2);
    ASSERT_EQ(may_dump_on_signal(SIGUSR1), 0);
    ASSERT_EQ(dup2(tmp, 2), 2);
    int64_t t0 = may_now();
    raise(SIGUSR1);
    int64_t took = may_now() - t0;
    ASSERT_EQ(dup2(saved, 2), 2);
    close(saved);
    ASSERT_EQ(may_dump_on_signal(0), 0);

    pthread_mutex_lock(&mu);
    dump_done = 1;
    int gave_up = ctor_gave_up;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    ASSERT_EQ(pthread_join(t, NULL), 0);

    off_t len = lseek(tmp, 0, SEEK_END);
    ASSERT_GT(len, 0);
    char *d = calloc(1, (size_t)len + 1);
    ASSERT_EQ(pread(tmp, d, (size_t)len, 0), len);
    close(tmp);
    unlink(path);
    printf("the dump took %.3f s while a constructor ran under the loader's lock\n",
           (double)took / 1e9);
    ASSERT_EQ(gave_up, 0); /* the dump finished while the constructor waited */
    if (!strstr(d, "may: coroutine dump (signal)") || !strstr(d, "dump_dlopen_blocked_fn+")) {
        fprintf(stderr, "expected a dump naming dump_dlopen_blocked_fn:\n%s\n", d);
        abort();
    }
    free(d);

    int v = 1;
    ASSERT_EQ(may_chan_send(ch, &v, MAY_FOREVER), 0);
    ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);
    may_chan_free(ch);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
