/* test_hook_negative: the negative controls of the hook tests, run as
 * child processes (so that every stage, valgrind's included, runs this
 * one executable as it is):
 *   - test_hook_{io,poll,net,sleep} built WITHOUT libmay_hook must fail
 *     (each within a few seconds: a rescue thread or a time bound ends
 *     the wait that holds the only worker, see hook_test.h);
 *   - test_hook_errno "nolock" with MAY_HOOK_NO_LOCK_THREAD=1 must pass:
 *     it asserts that without the thread lock a coroutine that moved
 *     thread reads a wrong errno through its old &errno;
 *   - test_hook_signal "nosig" with MAY_HOOK_NO_SIGTRAMP=1 must pass: it
 *     asserts that without the trampolines a handler's hooked call parks
 *     (other coroutines run on the handler's thread meanwhile). */
#include "hook_test.h"

#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

static pid_t start(const char *path, const char *arg, char **env)
{
    char *argv[] = { (char *)path, (char *)arg, NULL };
    pid_t pid;
    ASSERT_EQ(posix_spawn(&pid, path, NULL, NULL, argv, env), 0);
    return pid;
}

static int status_of(pid_t pid)
{
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    return st;
}

int main(void)
{
    static const char *const nohook[] = { NOHOOK_DIR "/test_hook_io_nohook",
                                          NOHOOK_DIR "/test_hook_poll_nohook",
                                          NOHOOK_DIR "/test_hook_net_nohook",
                                          NOHOOK_DIR "/test_hook_sleep_nohook" };
    enum { N = sizeof nohook / sizeof *nohook };
    pid_t pid[N + 2];
    for (int i = 0; i < N; i++)
        pid[i] = start(nohook[i], NULL, environ);
    /* the errno test's negative control */
    static char *env[64];
    int k = 0;
    for (char **e = environ; *e && k < 62; e++)
        if (strncmp(*e, "MAY_HOOK_NO_LOCK_THREAD=", 24) != 0 &&
            strncmp(*e, "MAY_HOOK_NO_SIGTRAMP=", 21) != 0)
            env[k++] = *e;
    env[k++] = "MAY_HOOK_NO_LOCK_THREAD=1";
    env[k] = NULL;
    pid[N] = start(NOHOOK_DIR "/test_hook_errno", "nolock", env);
    /* the signal test's: handlers installed as they are */
    env[k - 1] = "MAY_HOOK_NO_SIGTRAMP=1";
    pid[N + 1] = start(NOHOOK_DIR "/test_hook_signal", "nosig", env);
    for (int i = 0; i < N; i++) {
        int st = status_of(pid[i]);
        printf("%s without the hooks: %s %d (must fail)\n", nohook[i],
               WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        ASSERT(!WIFEXITED(st) || WEXITSTATUS(st) != 0);
    }
    int st = status_of(pid[N]);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = status_of(pid[N + 1]);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("test_hook_negative: ok\n");
    return 0;
}
