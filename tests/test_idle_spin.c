/* config idle_spin_us / $MAY_IDLE_SPIN_US: how long an idle worker spins
 * for work before it sleeps.  A ping-pong between coroutines pinned to two
 * workers: with no spin (-1) the waiting side sleeps (parks) on almost every
 * round; with the default spin it mostly finds the answer while spinning.
 * Each setting runs in a child process (the configuration is per process):
 * the test runs itself with an argument. */
#include "may.h"
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sys/wait.h>
#else /* the CPU count by its Windows name; no /proc/loadavg: load 0 */
#define _SC_NPROCESSORS_ONLN 0
#define sysconf(name) ((long)GetActiveProcessorCount(ALL_PROCESSOR_GROUPS))
#endif
#include <unistd.h>

static may_chan_t *ping, *pong;
static long rounds;

static void *pinger(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        ASSERT_EQ(may_chan_send(ping, &i, MAY_FOREVER), 0);
        long r;
        ASSERT_EQ(may_chan_recv(pong, &r, MAY_FOREVER), 0);
        ASSERT_EQ(r, i);
    }
    return NULL;
}

static void *ponger(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        long r;
        ASSERT_EQ(may_chan_recv(ping, &r, MAY_FOREVER), 0);
        ASSERT_EQ(may_chan_send(pong, &r, MAY_FOREVER), 0);
    }
    return NULL;
}

/* Child: the ping-pong; prints the workers' parks per round. */
static int child(void)
{
    rounds = test_scale(20000);
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2 }), 0);
    ASSERT_EQ(may_chan_new(&ping, sizeof(long), 0), 0);
    ASSERT_EQ(may_chan_new(&pong, sizeof(long), 0), 0);
    may_stats_t s0, s1;
    ASSERT_EQ(may_start(), 0);
    may_sleep(TEST_MS(20));
    ASSERT_EQ(may_stats(&s0), 0);
    may_co_t *a, *b;
    ASSERT_EQ(may_spawn(&a, pinger, NULL, &(may_spawn_opts_t){ .flags = MAY_SPAWN_PINNED, .worker = 0 }), 0);
    ASSERT_EQ(may_spawn(&b, ponger, NULL, &(may_spawn_opts_t){ .flags = MAY_SPAWN_PINNED, .worker = 1 }), 0);
    ASSERT_EQ(may_join(a, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_join(b, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_stats(&s1), 0);
    uint64_t parks = 0;
    for (int i = 0; i < 2; i++)
        parks += s1.worker[i].parks - s0.worker[i].parks;
    printf("%.3f\n", (double)parks / (double)rounds);
    may_chan_free(ping);
    may_chan_free(pong);
    ASSERT_EQ(may_shutdown(), 0);
    return 0;
}

/* Run this program as a child with MAY_IDLE_SPIN_US=spin ("" unset). */
#ifdef _WIN32
/* no fork: the child is started through _popen with the variable set in
 * this process's environment, which it inherits */
static double run_child(const char *self, const char *spin)
{
    if (*spin)
        ASSERT_EQ(setenv("MAY_IDLE_SPIN_US", spin, 1), 0);
    else
        ASSERT_EQ(unsetenv("MAY_IDLE_SPIN_US"), 0);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "\"%s\" child", self);
    fflush(stdout);
    FILE *p = _popen(cmd, "r");
    ASSERT(p != NULL);
    char buf[64] = "";
    char *got = fgets(buf, sizeof buf, p);
    ASSERT_EQ(_pclose(p), 0);
    ASSERT(unsetenv("MAY_IDLE_SPIN_US") == 0 && got != NULL);
    return atof(buf);
}
#else
static double run_child(const char *self, const char *spin)
{
    int fd[2];
    ASSERT_EQ(pipe(fd), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        if (*spin)
            setenv("MAY_IDLE_SPIN_US", spin, 1);
        else
            unsetenv("MAY_IDLE_SPIN_US");
        execl(self, self, "child", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char buf[64] = "";
    ssize_t n = read(fd[0], buf, sizeof buf - 1);
    close(fd[0]);
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return -1; /* could not exec itself (qemu-user: /proc/self/exe is qemu) */
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_GT(n, 0);
    return atof(buf);
}
#endif

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return child();
    /* bad values */
    ASSERT_EQ(may_configure(&(may_config_t){ .idle_spin_us = -2 }), -EINVAL);
    ASSERT_EQ(may_configure(&(may_config_t){ .idle_spin_us = 1000001 }), -EINVAL);
    ASSERT_EQ(may_configure(&(may_config_t){ .idle_spin_us = -1 }), 0);
    char self[4096];
#ifdef _WIN32
    DWORD k = GetModuleFileNameA(NULL, self, sizeof self);
    ASSERT(k > 0 && k < sizeof self);
#else
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ASSERT_GT(n, 0);
    self[n] = '\0';
#endif
    double nospin = run_child(self, "-1"), spin = 0;
    if (nospin < 0) {
        printf("skip: this program cannot run itself here\n");
        return 77;
    }
    /* without spinning, the side that waits sleeps on most rounds */
    ASSERT(nospin > 0.5);
    /* spinning avoids most of those sleeps where threads really run at
     * once (not under valgrind or qemu, whose threads take turns); a
     * loaded machine can deschedule the spinner's partner, so three tries */
    for (int i = 0; i < 3; i++) {
        spin = run_child(self, "");
        printf("parks per round: no spin %.3f, default spin %.3f\n", nospin, spin);
        fflush(stdout);
        if (spin < nospin / 2)
            break;
    }
    double load = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1)
            load = 0;
        fclose(f);
    }
    if (test_scale_factor() < 1.0 || load > (double)sysconf(_SC_NPROCESSORS_ONLN) - 0.5)
        printf("(threads take turns or the machine is busy, load %.1f: spin not compared)\n", load);
    else
        ASSERT(spin < nospin / 2);
    printf("ok\n");
    return 0;
}
