/*
 * bench_common.h - small helpers shared by the bench_*.c programs.
 *
 * Timing uses CLOCK_MONOTONIC directly so that the clock does not depend on
 * the library under test.  Every program prints one or more lines
 *     RESULT <bench> <metric> <value> <unit>
 * which bench/run.sh parses; everything else is for humans.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "may.h"

static inline int64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void bench_sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* Abort with a message when a may_* call returned a negative errno. */
#define BENCH_CHECK(call)                                                     \
    do {                                                                      \
        int bench_rc_ = (call);                                               \
        if (bench_rc_ < 0) {                                                  \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__,     \
                    #call, strerror(-bench_rc_));                             \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

/* A positive count from argv[i], else from the environment variable env,
 * else def. */
static inline long bench_arg_long(int argc, char **argv, int i,
                                  const char *env, long def)
{
    const char *s = NULL;
    if (argc > i)
        s = argv[i];
    else if (env != NULL)
        s = getenv(env);
    if (s == NULL || *s == '\0')
        return def;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < 0) {
        fprintf(stderr, "bad number '%s'\n", s);
        exit(2);
    }
    return v;
}

/* Peak resident set size (VmHWM) in KiB, or -1. */
static inline long bench_vmhwm_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            v = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* User + system CPU time of the whole process in ns. */
static inline int64_t bench_cpu_ns(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* Sum of voluntary + involuntary context switches over every thread of the
 * process; *threads receives the number of threads seen. */
static inline int64_t bench_ctx_switches(int *threads)
{
    int64_t total = 0;
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[320];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue; /* the thread just ended */
        n++;
        char line[256];
        while (fgets(line, sizeof line, f) != NULL) {
            if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
                total += strtoll(line + 24, NULL, 10);
            else if (strncmp(line, "nonvoluntary_ctxt_switches:", 27) == 0)
                total += strtoll(line + 27, NULL, 10);
        }
        fclose(f);
    }
    closedir(d);
    if (threads != NULL)
        *threads = n;
    return total;
}

#endif /* BENCH_COMMON_H */
