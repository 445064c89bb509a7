/* xargs.c - child processes: run a command on each line of stdin, several
 * at once, and print their outputs in input order (a tiny `xargs -P N`).
 *
 *   ls *.c | xargs -P 4 -t 10 wc -l
 *
 * Each non-empty input line becomes the command's last argument.  One
 * coroutine per line: it takes one of N slots (a semaphore), spawns the
 * command with stdout and stderr on one pipe of its own (MAY_STDIO_FD for
 * both, as `2>&1`), reads that pipe to its end with may_read (the coroutine
 * parks; its worker runs the others) and waits for the exit; past the
 * deadline (-t) it kills the child.  The main thread joins the coroutines
 * in input order and prints each output as soon as it is complete.  Exit
 * status 1 if any command failed (could not start, exited non-zero, died
 * of a signal, timed out).  Options come before the command. */
#include "may.h"
#include "usage.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] =
    "usage: xargs [-P N] [-t SECONDS] COMMAND [ARG...]\n"
    "Runs COMMAND ARG... LINE for each line of stdin, at most N at once (default 4),\n"
    "and prints the output (stdout and stderr) of each in input order.  -t: kill a\n"
    "command still running after SECONDS.  Exit status 1 if any command failed.\n";

typedef struct job {
    char *line;          /* the last argument */
    char *out;           /* what the command wrote (and our notes) */
    size_t len;
    int failed;
} job_t;

static char **cmd;        /* COMMAND ARG... */
static int ncmd;
static may_sem_t *slots;  /* N at once */
static int64_t limit_ns;  /* -t, 0: none */

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "xargs: %s\n", what);
    exit(1);
}

static void append(job_t *j, const char *s, size_t n)
{
    char *o = realloc(j->out, j->len + n);
    if (!o)
        return; /* out of memory: the rest of the output is lost */
    memcpy(o + j->len, s, n);
    j->out = o;
    j->len += n;
}

static void note(job_t *j, const char *why)
{
    char s[512];
    int n = snprintf(s, sizeof s, "xargs: %s %s: %s\n", cmd[0], j->line, why);
    append(j, s, n < (int)sizeof s ? (size_t)n : sizeof s - 1);
    j->failed = 1;
}

/* Run the command on one line, collecting its output. */
static void *run(void *arg)
{
    job_t *j = arg;
    const char **argv = calloc((size_t)ncmd + 2, sizeof *argv);
    int pp[2] = { -1, -1 };
    if (!argv || pipe2(pp, O_CLOEXEC) < 0) {
        note(j, strerror(errno));
        goto out;
    }
    memcpy(argv, cmd, (size_t)ncmd * sizeof *argv);
    argv[ncmd] = j->line;
    may_sem_wait(slots, MAY_FOREVER);
    int64_t deadline = limit_ns ? may_deadline_in(limit_ns) : MAY_FOREVER;
    may_process_t *p;
    int r = may_process_spawn(&p, cmd[0], argv,
                              &(may_process_opts_t){
                                  .stdio = { MAY_STDIO_NULL, MAY_STDIO_FD, MAY_STDIO_FD },
                                  .fd = { -1, pp[1], pp[1] } });
    close(pp[1]); /* the child has its copy: end of file once it is gone */
    if (r < 0) {
        note(j, strerror(-r));
    } else {
        char buf[4096];
        ssize_t n;
        int st = 0;
        while ((n = may_read(pp[0], buf, sizeof buf, deadline)) > 0)
            append(j, buf, (size_t)n);
        if (n == -ETIMEDOUT || may_process_wait(p, &st, deadline) == -ETIMEDOUT) {
            may_process_kill(p, SIGKILL);
            may_process_wait(p, &st, MAY_FOREVER);
            note(j, "timed out, killed");
        } else if (WIFSIGNALED(st)) {
            note(j, strsignal(WTERMSIG(st)));
        } else if (WEXITSTATUS(st) != 0) {
            j->failed = 1;
        }
        may_process_free(p);
    }
    may_sem_post(slots);
out:
    if (pp[0] >= 0)
        may_fd_close(pp[0]);
    free(argv);
    return NULL;
}

int main(int argc, char **argv)
{
    long n = 4;
    double secs = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "-P") == 0 && i + 1 < argc) {
            n = usage_long(argv[++i], 1, 4096, usage);
        } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            secs = usage_positive(argv[++i], 86400, usage);
        } else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else {
            usage_fail(usage, "unknown option", argv[i]);
        }
    }
    if (i == argc)
        usage_fail(usage, "missing", "COMMAND");
    cmd = argv + i;
    ncmd = argc - i;
    limit_ns = (int64_t)(secs * 1e9);

    /* the lines, read before anything runs */
    job_t *jobs = NULL;
    size_t njobs = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = 0;
        if (len == 0)
            continue;
        job_t *nj = realloc(jobs, (njobs + 1) * sizeof *jobs);
        if (!nj)
            die("out of memory");
        jobs = nj;
        jobs[njobs++] = (job_t){ .line = line }; /* the job keeps getline's buffer */
        line = NULL;
        cap = 0;
    }
    free(line);

    may_co_t **co = calloc(njobs + 1, sizeof *co);
    if (!co || may_sem_new(&slots, (unsigned)n) < 0)
        die("out of memory");
    for (size_t k = 0; k < njobs; k++)
        if (may_spawn(&co[k], run, &jobs[k], NULL) < 0)
            die("cannot spawn a coroutine");
    int failed = 0;
    for (size_t k = 0; k < njobs; k++) { /* in input order */
        may_join(co[k], NULL, MAY_FOREVER);
        if (jobs[k].len)
            fwrite(jobs[k].out, 1, jobs[k].len, stdout);
        fflush(stdout);
        failed |= jobs[k].failed;
        free(jobs[k].out);
        free(jobs[k].line);
    }
    free(co);
    free(jobs);
    may_sem_free(slots);
    may_shutdown();
    return failed;
}
