/* A stack overflow is reported with the coroutine's id, name and stack
 * size, in each stack mode, and ends the process with a failure status.
 * Each case runs in a child process. */
#include "test.h"
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

static int depth_sink;
static int recurse(int n)
{
    if (n < 0)
        return 0;
    volatile char pad[512];
    pad[0] = (char)n;
    depth_sink += pad[0];
    return recurse(n + 1) + pad[0];
}

static void *overflow(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)recurse(0);
}

static void run_child(int mode, void *(*fn)(void *), const char *name)
{
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        may_config_t cfg = { .stack_mode = mode, .workers = 1 };
        may_configure(&cfg);
        may_co_t *c;
        may_spawn_opts_t o = { .name = name };
        may_spawn(&c, fn, NULL, &o);
        may_join(c, MAY_FOREVER, NULL);
        _exit(0); /* not reached if the overflow is caught */
    }
    close(pipefd[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    while ((r = read(pipefd[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    close(pipefd[0]);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    printf("mode %d: child status %#x, said: %s", mode, status, buf);
    ASSERT(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    ASSERT(strstr(buf, "stack overflow in coroutine") != NULL);
    ASSERT(strstr(buf, name) != NULL);
    ASSERT(strstr(buf, "stack size 65536") != NULL);
}

int main(void)
{
    run_child(MAY_STACK_GUARD, overflow, "deep-guarded");
    run_child(MAY_STACK_DENSE, overflow, "deep-dense");
    printf("ok\n");
    return 0;
}
