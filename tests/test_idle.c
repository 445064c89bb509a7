/* An idle runtime uses no CPU and its threads do not wake up: with nothing
 * runnable and no timer due, every worker sleeps (one in the poller, the
 * others on a futex).  Checked through /proc: context switches of every
 * worker thread (named "may-worker-N") over an idle second. */
#include "test.h"
#include <dirent.h>
#include <errno.h>
#include <unistd.h>

static long switches_of_workers(void)
{
    long total = 0;
    DIR *d = opendir("/proc/self/task");
    ASSERT(d);
    struct dirent *e;
    int self = getpid();
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == self)
            continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        /* only the runtime's workers (not, e.g., a sanitizer's own thread) */
        if (!fgets(line, sizeof line, f) || !strstr(line, "may-worker-")) {
            fclose(f);
            continue;
        }
        while (fgets(line, sizeof line, f)) {
            long v;
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 ||
                sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1)
                total += v;
        }
        fclose(f);
    }
    closedir(d);
    return total;
}

static void *idler(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)may_park(MAY_FOREVER);
}

static void *ticker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++)
        may_sleep(TEST_MS(10));
    return NULL;
}

int main(void)
{
    ASSERT_EQ(may_start(), 0);
    may_co_t *c, *t;
    ASSERT_EQ(may_spawn(&c, idler, NULL, NULL), 0);
    /* some activity first, so the workers have run and gone idle again */
    ASSERT_EQ(may_spawn(&t, ticker, NULL, NULL), 0);
    ASSERT_EQ(may_join(t, NULL, MAY_FOREVER), MAY_DONE);
    usleep(100000);
    long before = switches_of_workers();
    usleep(1000000);
    long after = switches_of_workers();
    printf("idle second: %ld context switches across %d workers\n", after - before, may_workers());
    ASSERT_LE(after - before, 2);
    may_cancel(c);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
