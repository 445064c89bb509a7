/* Windows: child processes (src/win/process_win.c, docs/PROCESS.md
 * "Windows").  The test runs itself as the child (GetModuleFileName) with
 * a mode in argv[1]; Linux has tests/test_process.c.  Covered: exit codes,
 * stdin/stdout/stderr pipes through may_read/may_write (larger than the
 * pipe's buffer), the argv quoting round trip, environment and working
 * directory, the stdio modes, errors, kill, the wait's deadline and
 * cancellation, several waiters, 50 children at once, no handle leak, and
 * that the child inherits no handle but its three. */
#include "../test.h"

#include <windows.h>

#include <fcntl.h>
#include <io.h>
#include <pthread.h>
#include <signal.h>

static char self_exe[MAX_PATH];

/* ---- the child ------------------------------------------------------- */

static void out_str(HANDLE h, const char *s, size_t n)
{
    DWORD k;
    while (n > 0 && WriteFile(h, s, (DWORD)n, &k, NULL) && k > 0) {
        s += k;
        n -= k;
    }
}

static int child(int argc, char **argv)
{
    HANDLE in = GetStdHandle(STD_INPUT_HANDLE), out = GetStdHandle(STD_OUTPUT_HANDLE);
    const char *m = argv[1];
    if (strcmp(m, "exit") == 0)
        return atoi(argv[2]);
    if (strcmp(m, "sleep") == 0) {
        Sleep((DWORD)atoi(argv[2]));
        return 0;
    }
    if (strcmp(m, "print") == 0) { /* argv[2] to stdout, argv[3] to stderr */
        out_str(out, argv[2], strlen(argv[2]));
        if (argc > 3)
            out_str(GetStdHandle(STD_ERROR_HANDLE), argv[3], strlen(argv[3]));
        return (int)strlen(argv[2]);
    }
    if (strcmp(m, "echo") == 0) { /* stdin to stdout until end of file */
        static char buf[65536];
        DWORD k;
        while (ReadFile(in, buf, sizeof buf, &k, NULL) && k > 0)
            out_str(out, buf, k);
        return 0;
    }
    if (strcmp(m, "args") == 0) { /* argv[2..], each ended by a NUL */
        for (int i = 2; i < argc; i++)
            out_str(out, argv[i], strlen(argv[i]) + 1);
        return argc - 2;
    }
    if (strcmp(m, "env") == 0) {
        const char *v = getenv(argv[2]);
        out_str(out, v ? v : "(unset)", strlen(v ? v : "(unset)"));
        return 0;
    }
    if (strcmp(m, "cwd") == 0) {
        char d[MAX_PATH];
        DWORD n = GetCurrentDirectoryA(MAX_PATH, d);
        out_str(out, d, n);
        return 0;
    }
    if (strcmp(m, "cmdline") == 0) { /* the UTF-16 command line, as UTF-8 */
        char u[4096];
        int n = WideCharToMultiByte(CP_UTF8, 0, GetCommandLineW(), -1, u, sizeof u, NULL, NULL);
        out_str(out, u, n > 0 ? (size_t)n - 1 : 0);
        return 0;
    }
    if (strcmp(m, "leak") == 0) { /* write to a handle value of the parent's */
        HANDLE h = (HANDLE)(intptr_t)strtoll(argv[2], NULL, 0);
        DWORD k = 0;
        BOOL ok = WriteFile(h, "x", 1, &k, NULL);
        out_str(out, ok ? "wrote" : "failed", ok ? 5 : 6);
        return 0;
    }
    fprintf(stderr, "child: unknown mode %s\n", m);
    return 99;
}

/* ---- helpers --------------------------------------------------------- */

static may_process_t *spawn_self(const char *const *args, may_process_opts_t o)
{
    const char *argv[16] = { self_exe };
    int n = 1;
    while (args[n - 1])
        argv[n] = args[n - 1], n++;
    argv[n] = NULL;
    may_process_t *p = NULL;
    int r = may_process_spawn(&p, self_exe, argv, &o);
    if (r != 0)
        fprintf(stderr, "spawn %s: %d\n", args[0], r);
    ASSERT_EQ(r, 0);
    ASSERT(p);
    return p;
}

static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ASSERT_LT(got, cap);
        ssize_t n = may_read(fd, buf + got, cap - got, may_deadline_in(TEST_MS(60000)));
        ASSERT_GE(n, 0);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static int wait_status(may_process_t *p)
{
    int st = -12345;
    ASSERT_EQ(may_process_wait(p, &st, may_deadline_in(TEST_MS(60000))), 0);
    return st;
}

/* Run the child with args and stdout on a pipe: its output in out (NUL
 * ended), its status returned. */
static int run_out(const char *const *args, may_process_opts_t o, char *out, size_t cap)
{
    o.stdio[1] = MAY_STDIO_PIPE;
    may_process_t *p = spawn_self(args, o);
    size_t n = read_all(may_process_stdio(p, 1), out, cap - 1);
    out[n] = 0;
    int st = wait_status(p);
    may_process_free(p);
    return st;
}

/* ---- tests ----------------------------------------------------------- */

static void test_status(void)
{
    static const char *codes[] = { "0", "7", "255", "1000" };
    for (int i = 0; i < 4; i++) {
        may_process_t *p = spawn_self((const char *[]){ "exit", codes[i], NULL },
                                      (may_process_opts_t){ 0 });
        ASSERT_GT(may_process_pid(p), 0);
        ASSERT_EQ(may_process_stdio(p, 0), -1);
        ASSERT_EQ(wait_status(p), atoi(codes[i]));
        ASSERT_EQ(wait_status(p), atoi(codes[i])); /* again, the same */
        ASSERT_EQ(may_process_kill(p, 0), -ESRCH);
        may_process_free(p);
    }
}

enum { BIG = 300000 }; /* several times the pipe's buffer */
static char pattern[BIG], echoed[BIG + 16];

static void *writer_co(void *arg)
{
    may_process_t *p = arg;
    int fd = may_process_stdio(p, 0);
    size_t done = 0;
    while (done < BIG) {
        ssize_t n = may_write(fd, pattern + done, BIG - done, MAY_FOREVER);
        ASSERT_GT(n, 0);
        done += (size_t)n;
    }
    ASSERT_EQ(may_process_close_stdio(p, 0), 0); /* the child reads end of file */
    return NULL;
}

static void test_pipes(void)
{
    for (int i = 0; i < BIG; i++)
        pattern[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    pattern[100] = '\n'; /* binary: no CR added */
    pattern[101] = '\r';
    pattern[102] = 26;   /* ^Z is no end of file either */
    may_process_t *p = spawn_self((const char *[]){ "echo", NULL },
                                  (may_process_opts_t){ .stdio = { MAY_STDIO_PIPE, MAY_STDIO_PIPE } });
    ASSERT_GE(may_process_stdio(p, 0), 0);
    ASSERT_GE(may_process_stdio(p, 1), 0);
    ASSERT_EQ(may_process_stdio(p, 2), -1);
    may_co_t *w;
    ASSERT_EQ(may_spawn(&w, writer_co, p, NULL), 0);
    size_t n = read_all(may_process_stdio(p, 1), echoed, sizeof echoed);
    ASSERT_EQ(may_join(w, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(n, BIG);
    ASSERT(memcmp(pattern, echoed, BIG) == 0);
    ASSERT_EQ(wait_status(p), 0);
    /* no readiness for pipes on Windows */
    ASSERT_EQ(may_fd_wait(may_process_stdio(p, 1), MAY_READ, MAY_NOWAIT), -ENOTSUP);
    /* taken over: p forgets it, the caller closes it */
    int fd = may_process_take_stdio(p, 1);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(may_process_stdio(p, 1), -1);
    ASSERT_EQ(may_process_take_stdio(p, 1), -EBADF);
    ASSERT_EQ(may_process_close_stdio(p, 0), -EBADF);
    ASSERT_EQ(may_fd_close(fd), 0);
    may_process_free(p);

    /* stdout and stderr apart, and stdin NUL: the child reads end of file */
    p = spawn_self((const char *[]){ "print", "to-out", "to-err", NULL },
                   (may_process_opts_t){ .stdio = { MAY_STDIO_NULL, MAY_STDIO_PIPE, MAY_STDIO_PIPE } });
    char b1[64], b2[64];
    size_t n1 = read_all(may_process_stdio(p, 1), b1, sizeof b1);
    size_t n2 = read_all(may_process_stdio(p, 2), b2, sizeof b2);
    ASSERT_EQ(n1, 6);
    ASSERT(memcmp(b1, "to-out", 6) == 0);
    ASSERT_EQ(n2, 6);
    ASSERT(memcmp(b2, "to-err", 6) == 0);
    ASSERT_EQ(wait_status(p), 6);
    may_process_free(p);
    p = spawn_self((const char *[]){ "echo", NULL },
                   (may_process_opts_t){ .stdio = { MAY_STDIO_NULL, MAY_STDIO_PIPE } });
    ASSERT_EQ(read_all(may_process_stdio(p, 1), b1, sizeof b1), 0);
    ASSERT_EQ(wait_status(p), 0);
    may_process_free(p);

    /* a write to a pipe whose reader has gone: -EPIPE */
    p = spawn_self((const char *[]){ "exit", "0", NULL },
                   (may_process_opts_t){ .stdio = { MAY_STDIO_PIPE } });
    ASSERT_EQ(wait_status(p), 0);
    ASSERT_EQ(may_write(may_process_stdio(p, 0), "x", 1, MAY_FOREVER), -EPIPE);
    may_process_free(p);

    /* no handle's value: none open there, or not a multiple of 4 */
    char c;
    ASSERT_EQ(may_read(0x3ffffc, &c, 1, MAY_NOWAIT), -EBADF);
    ASSERT_EQ(may_write(0x3ffffc, &c, 1, MAY_NOWAIT), -EBADF);
    ASSERT_EQ(may_read(4002, &c, 1, MAY_NOWAIT), -EBADF);
    ASSERT_EQ(may_fd_close(4002), -EBADF);
}

static void test_modes(void)
{
    char out[256];
    /* stdout NUL: the child writes into nothing */
    may_process_t *p = spawn_self((const char *[]){ "print", "hello", NULL },
                                  (may_process_opts_t){ .stdio = { 0, MAY_STDIO_NULL } });
    ASSERT_EQ(wait_status(p), 5);
    may_process_free(p);
    /* stdout to a file of ours (MAY_STDIO_FD): it stays open here */
    char path[MAX_PATH], dir[MAX_PATH];
    ASSERT_GT(GetTempPathA(MAX_PATH, dir), 0);
    snprintf(path, sizeof path, "%smay-proc-%lu.txt", dir, (unsigned long)GetCurrentProcessId());
    int fd = may_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600, MAY_FOREVER);
    ASSERT_GE(fd, 0);
    p = spawn_self((const char *[]){ "print", "in-file", "also", NULL },
                   (may_process_opts_t){ .stdio = { 0, MAY_STDIO_FD, MAY_STDIO_FD }, .fd = { 0, fd, fd } });
    ASSERT_EQ(wait_status(p), 7);
    may_process_free(p);
    ssize_t n = may_file_read(fd, out, sizeof out, 0, MAY_FOREVER);
    ASSERT_EQ(n, 11);
    ASSERT(memcmp(out, "in-filealso", 11) == 0);
    /* may_read on a file (not a socket): from the file position */
    LARGE_INTEGER to = { .QuadPart = 2 };
    ASSERT(SetFilePointerEx((HANDLE)(intptr_t)fd, to, NULL, FILE_BEGIN));
    ASSERT_EQ(may_read(fd, out, 4, MAY_FOREVER), 4);
    ASSERT(memcmp(out, "-fil", 4) == 0);
    ASSERT_EQ(may_fd_close(fd), 0);
    ASSERT(DeleteFileA(path));
}

static void test_argv(void)
{
    static const char *const args[] = {
        "args", "plain", "two words", "", "\"quoted\"", "back\\slash", "trail\\",
        "trail\\\\", "sp ace\\", "x\\\"y", "x\\\\\"y", "tab\there", "a\"b\"c d", "\\\\server\\x",
        NULL,
    };
    char out[1024];
    int st = run_out(args, (may_process_opts_t){ 0 }, out, sizeof out);
    ASSERT_EQ(st, 13);
    const char *s = out;
    for (int i = 1; args[i]; i++) {
        if (strcmp(s, args[i]) != 0)
            fprintf(stderr, "arg %d: sent [%s], child saw [%s]\n", i, args[i], s);
        ASSERT(strcmp(s, args[i]) == 0);
        s += strlen(s) + 1;
    }
    /* UTF-8 arguments reach the child as UTF-16 */
    st = run_out((const char *[]){ "cmdline", "gr\xc3\xbc\xc3\x9f \xe2\x82\xac", NULL },
                 (may_process_opts_t){ 0 }, out, sizeof out);
    ASSERT_EQ(st, 0);
    ASSERT(strstr(out, "cmdline \"gr\xc3\xbc\xc3\x9f \xe2\x82\xac\""));
}

static void test_env_cwd(void)
{
    char out[MAX_PATH + 64];
    const char *env[] = { "zeta=1", "MAY_PW_VAR=hello there", "Alpha=2", NULL };
    ASSERT_EQ(run_out((const char *[]){ "env", "MAY_PW_VAR", NULL }, (may_process_opts_t){ .env = env },
                      out, sizeof out), 0);
    ASSERT(strcmp(out, "hello there") == 0);
    ASSERT_EQ(run_out((const char *[]){ "env", "PATH", NULL }, (may_process_opts_t){ .env = env },
                      out, sizeof out), 0);
    ASSERT(strcmp(out, "(unset)") == 0);
    /* SYSTEMROOT is added when .env lacks it */
    ASSERT_EQ(run_out((const char *[]){ "env", "SYSTEMROOT", NULL }, (may_process_opts_t){ .env = env },
                      out, sizeof out), 0);
    ASSERT(strcmp(out, "(unset)") != 0 && out[0]);
    /* inherited */
    ASSERT_EQ(_putenv("MAY_PW_INHERIT=yes"), 0);
    ASSERT_EQ(run_out((const char *[]){ "env", "MAY_PW_INHERIT", NULL }, (may_process_opts_t){ 0 },
                      out, sizeof out), 0);
    ASSERT(strcmp(out, "yes") == 0);
    /* the working directory */
    char dir[MAX_PATH], full[MAX_PATH];
    ASSERT_GT(GetSystemDirectoryA(dir, MAX_PATH), 0);
    ASSERT_GT(GetFullPathNameA(dir, MAX_PATH, full, NULL), 0);
    ASSERT_EQ(run_out((const char *[]){ "cwd", NULL }, (may_process_opts_t){ .cwd = dir }, out, sizeof out), 0);
    if (_stricmp(out, full) != 0)
        fprintf(stderr, "cwd: [%s] vs [%s]\n", out, full);
    ASSERT(_stricmp(out, full) == 0);
}

static void test_errors(void)
{
    may_process_t *p = (may_process_t *)1;
    const char *argv[] = { "x", NULL };
    ASSERT_EQ(may_process_spawn(&p, "may-no-such-program", argv, NULL), -ENOENT);
    ASSERT(p == NULL);
    ASSERT_EQ(may_process_spawn(&p, "C:\\may\\no\\such.exe", argv, NULL), -ENOENT);
    ASSERT_EQ(may_process_spawn(&p, "", argv, NULL), -ENOENT);
    char dir[MAX_PATH];
    ASSERT_GT(GetWindowsDirectoryA(dir, MAX_PATH), 0);
    ASSERT_EQ(may_process_spawn(&p, dir, argv, NULL), -EACCES); /* a directory */
    ASSERT_EQ(may_process_spawn(&p, self_exe, argv, &(may_process_opts_t){ .cwd = "C:\\may-no-such-dir" }),
              -ENOENT);
    ASSERT_EQ(may_process_spawn(&p, self_exe, argv, &(may_process_opts_t){ .cwd = self_exe }), -ENOTDIR);
    ASSERT_EQ(may_process_spawn(&p, self_exe, argv, &(may_process_opts_t){ .stdio = { 9 } }), -EINVAL);
    ASSERT_EQ(may_process_spawn(&p, self_exe, argv,
                                &(may_process_opts_t){ .stdio = { MAY_STDIO_FD }, .fd = { -1 } }), -EBADF);
    ASSERT_EQ(may_process_spawn(&p, self_exe, argv,
                                &(may_process_opts_t){ .stdio = { MAY_STDIO_FD }, .fd = { 0x3ffffc } }), -EBADF);
    ASSERT_EQ(may_process_spawn(&p, self_exe, argv,
                                &(may_process_opts_t){ .stdio = { MAY_STDIO_FD }, .fd = { 4002 } }), -EBADF);
    ASSERT_EQ(may_process_spawn(&p, self_exe, argv, &(may_process_opts_t){ .flags = 64 }), -EINVAL);
    ASSERT_EQ(may_process_spawn(NULL, self_exe, argv, NULL), -EINVAL);
    ASSERT_EQ(may_process_spawn(&p, self_exe, NULL, NULL), -EINVAL);
    /* found in PATH, ".exe" appended: the system's cmd */
    p = NULL;
    ASSERT_EQ(may_process_spawn(&p, "cmd", ((const char *[]){ "cmd", "/c", "exit 3", NULL }),
                                &(may_process_opts_t){ .stdio = { MAY_STDIO_NULL, MAY_STDIO_NULL } }), 0);
    ASSERT_EQ(wait_status(p), 3);
    may_process_free(p);
    ASSERT_EQ(may_process_wait(NULL, NULL, 0), -EINVAL);
    ASSERT_EQ(may_process_kill(NULL, SIGTERM), -EINVAL);
    ASSERT_EQ(may_process_stdio(NULL, 0), -1);
    ASSERT_EQ(may_process_pid(NULL), -1);
    may_process_free(NULL);
}

static void *wait_forever_co(void *arg)
{
    int st = -1;
    int r = may_process_wait(arg, &st, MAY_FOREVER);
    return (void *)(intptr_t)(r < 0 ? r : st);
}

static void *wait_thread(void *arg)
{
    return wait_forever_co(arg);
}

static void *self_cancel_wait_co(void *arg)
{
    may_cancel(may_self());
    return wait_forever_co(arg);
}

static void test_wait_kill(void)
{
    may_process_t *p = spawn_self((const char *[]){ "sleep", "30000", NULL }, (may_process_opts_t){ 0 });
    ASSERT_EQ(may_process_wait(p, NULL, MAY_NOWAIT), -ETIMEDOUT);
    int64_t t0 = may_now();
    ASSERT_EQ(may_process_wait(p, NULL, may_deadline_in(TEST_MS(30))), -ETIMEDOUT);
    ASSERT_GE(may_now() - t0, TEST_MS(30));
    ASSERT_EQ(may_process_kill(p, 0), 0); /* alive */
    ASSERT_EQ(may_process_kill(p, -1), -EINVAL);

    may_co_t *c;
    void *res;
    ASSERT_EQ(may_spawn(&c, wait_forever_co, p, NULL), 0);
    may_sleep(TEST_MS(10));
    ASSERT_EQ(may_cancel(c), 0);
    ASSERT_EQ(may_join(c, &res, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)res, -ECANCELED);
    ASSERT_EQ(may_spawn(&c, self_cancel_wait_co, p, NULL), 0);
    ASSERT_EQ(may_join(c, &res, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)res, -ECANCELED);

    /* several waiters, coroutines and a thread, all see the kill */
    enum { NW = 4 };
    may_co_t *w[NW];
    for (int i = 0; i < NW; i++)
        ASSERT_EQ(may_spawn(&w[i], wait_forever_co, p, NULL), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, wait_thread, p), 0);
    may_sleep(TEST_MS(10));
    t0 = may_now();
    ASSERT_EQ(may_process_kill(p, SIGTERM), 0);
    for (int i = 0; i < NW; i++) {
        ASSERT_EQ(may_join(w[i], &res, MAY_FOREVER), MAY_DONE);
        ASSERT_EQ((intptr_t)res, 1); /* TerminateProcess(h, 1) */
    }
    ASSERT_EQ(pthread_join(th, &res), 0);
    ASSERT_EQ((intptr_t)res, 1);
    ASSERT_LT(may_now() - t0, TEST_MS(20000)); /* not the 30 s sleep */
    ASSERT_EQ(may_process_kill(p, 9), -ESRCH);
    may_process_free(p);

    /* a cancelled caller still gets the status of a child that has exited */
    p = spawn_self((const char *[]){ "exit", "7", NULL }, (may_process_opts_t){ 0 });
    ASSERT_EQ(wait_status(p), 7);
    ASSERT_EQ(may_spawn(&c, self_cancel_wait_co, p, NULL), 0);
    ASSERT_EQ(may_join(c, &res, MAY_FOREVER), MAY_CANCELED);
    ASSERT_EQ((intptr_t)res, 7);
    may_process_free(p);

    /* freed while it runs: it runs on (no zombies on Windows) */
    p = spawn_self((const char *[]){ "sleep", "100", NULL }, (may_process_opts_t){ .stdio = { MAY_STDIO_PIPE } });
    may_process_free(p);
}

static void *many_co(void *arg)
{
    int i = (int)(intptr_t)arg;
    char text[32], out[64];
    snprintf(text, sizeof text, "child-%d", i);
    int st = run_out((const char *[]){ "print", text, NULL }, (may_process_opts_t){ 0 }, out, sizeof out);
    ASSERT_EQ(st, (int)strlen(text));
    ASSERT(strcmp(out, text) == 0);
    return NULL;
}

static void test_many(void)
{
    enum { N = 50 };
    may_co_t *c[N];
    int64_t t0 = may_now();
    for (int i = 0; i < N; i++)
        ASSERT_EQ(may_spawn(&c[i], many_co, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(may_join(c[i], NULL, MAY_FOREVER), MAY_DONE);
    fprintf(stderr, "   %d children at once: %.0f ms\n", N, (double)(may_now() - t0) / 1e6);
}

static void round_of(int n)
{
    char out[64];
    for (int i = 0; i < n; i++) {
        may_process_t *p = spawn_self((const char *[]){ "echo", NULL },
                                      (may_process_opts_t){ .stdio = { MAY_STDIO_PIPE, MAY_STDIO_PIPE,
                                                                       MAY_STDIO_NULL } });
        ASSERT_EQ(may_write(may_process_stdio(p, 0), "abc", 3, MAY_FOREVER), 3);
        ASSERT_EQ(may_process_close_stdio(p, 0), 0);
        ASSERT_EQ(read_all(may_process_stdio(p, 1), out, sizeof out), 3);
        ASSERT_EQ(wait_status(p), 0);
        may_process_free(p);
    }
}

/* The handles of this process: GetProcessHandleCount, which wine 8.0 says
 * is 0, so also by probing every handle value below 1 << 16 (handle values
 * are multiples of 4, and wine's stay in the low thousands here; each
 * probe is a round trip to the wineserver, so 1 << 20 took 35 s). */
static unsigned long count_handles(void)
{
    DWORD n = 0;
    if (GetProcessHandleCount(GetCurrentProcess(), &n) && n > 0)
        return n;
    DWORD fl;
    for (uintptr_t h = 4; h < (1u << 16); h += 4)
        n += GetHandleInformation((HANDLE)h, &fl) != 0;
    return n;
}

static void test_no_leak(void)
{
    round_of(10); /* the thread pool's wait thread, offload helpers */
    unsigned long h0 = count_handles();
    round_of(20);
    unsigned long h1 = count_handles();
    round_of(20);
    unsigned long h2 = count_handles();
    fprintf(stderr, "   handles: %lu, %lu, %lu\n", h0, h1, h2);
    ASSERT_GT(h0, 0);
    ASSERT_LE(h1, h0 + 4); /* a leak would be 20 or more */
    ASSERT_LE(h2, h0 + 4);
}

static void test_inherit(void)
{
    /* an inheritable pipe of the program's own: not the child's */
    SECURITY_ATTRIBUTES sa = { sizeof sa, NULL, TRUE };
    HANDLE rd, wr;
    ASSERT(CreatePipe(&rd, &wr, &sa, 0));
    char val[32], out[64];
    snprintf(val, sizeof val, "%lld", (long long)(intptr_t)wr);
    ASSERT_EQ(run_out((const char *[]){ "leak", val, NULL }, (may_process_opts_t){ 0 }, out, sizeof out), 0);
    DWORD avail = 99;
    ASSERT(PeekNamedPipe(rd, NULL, 0, NULL, &avail, NULL));
    if (avail != 0)
        fprintf(stderr, "leak: the child wrote to the parent's pipe (%s)\n", out);
    ASSERT_EQ(avail, 0);
    CloseHandle(rd);
    CloseHandle(wr);
}

/* Files, pipes and sockets are fds of one name space (handle values):
 * 200 files and 200 sockets open at once have 400 distinct values, and
 * may_fd_close of each closes that object and no other. */
#define NCOLL 200
static int coll_file_alive(int fd)
{
    return GetFileType((HANDLE)(intptr_t)fd) == FILE_TYPE_DISK;
}

static int coll_sock_alive(int fd)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    return getsockname((SOCKET)fd, (struct sockaddr *)&ss, &len) == 0;
}

static void test_one_namespace(void)
{
    static int file[NCOLL], sock[NCOLL];
    char dir[MAX_PATH], path[MAX_PATH + 64];
    ASSERT_GT(GetTempPathA(MAX_PATH, dir), 0);
    snprintf(path, sizeof path, "%smay-ns-%lu.txt", dir, (unsigned long)GetCurrentProcessId());
    for (int i = 0; i < NCOLL; i++) {
        /* the same file opened again each time (shared for read and write) */
        file[i] = may_file_open(path, O_RDWR | O_CREAT, 0600, MAY_FOREVER);
        ASSERT_GT(file[i], 2);
        ASSERT_EQ(file[i] & 3, 0);
        sock[i] = may_udp_bind("127.0.0.1:0");
        ASSERT_GT(sock[i], 2);
    }
    for (int i = 0; i < NCOLL; i++)
        for (int j = 0; j < NCOLL; j++) {
            ASSERT(file[i] != sock[j]);
            ASSERT(j == i || (file[i] != file[j] && sock[i] != sock[j]));
        }
    /* the right object: a file is no socket, a socket no disk file */
    for (int i = 0; i < NCOLL; i++) {
        ASSERT(coll_file_alive(file[i]) && !coll_sock_alive(file[i]));
        ASSERT(coll_sock_alive(sock[i]) && !coll_file_alive(sock[i]));
    }
    ASSERT_EQ(may_file_write(file[0], "ns", 2, 0, MAY_FOREVER), 2);
    /* closed alternately; every 40 steps all the others are still open */
    for (int i = 0; i < NCOLL; i++) {
        ASSERT_EQ(may_fd_close(file[i]), 0);
        ASSERT(!coll_file_alive(file[i]));
        ASSERT_EQ(may_fd_close(sock[i]), 0);
        ASSERT(!coll_sock_alive(sock[i]));
        if (i % 40 == 0 || i == NCOLL - 1)
            for (int j = i + 1; j < NCOLL; j++)
                ASSERT(coll_file_alive(file[j]) && coll_sock_alive(sock[j]));
    }
    ASSERT(DeleteFileA(path));
}

/* 0, 1, 2 are the standard handles; closing 0 closes it and clears it. */
static void test_std_fds(void)
{
    HANDLE rd, wr, old_in = GetStdHandle(STD_INPUT_HANDLE);
    ASSERT(CreatePipe(&rd, &wr, NULL, 0));
    ASSERT(SetStdHandle(STD_INPUT_HANDLE, rd));
    int w = (int)(intptr_t)wr;
    char buf[8];
    ASSERT_EQ(may_write(w, "std", 3, MAY_FOREVER), 3);
    ASSERT_EQ(may_read(0, buf, sizeof buf, MAY_FOREVER), 3);
    ASSERT(memcmp(buf, "std", 3) == 0);
    ASSERT_EQ(may_fd_wait(0, MAY_READ, MAY_NOWAIT), -ENOTSUP);
    ASSERT_EQ(may_fd_close(0), 0); /* the pipe's read end */
    ASSERT(GetStdHandle(STD_INPUT_HANDLE) == NULL);
    ASSERT_EQ(may_read(0, buf, 1, MAY_NOWAIT), -EBADF);
    ASSERT_EQ(may_fd_close(0), -EBADF);
    ASSERT_EQ(may_write(w, "x", 1, MAY_FOREVER), -EPIPE); /* no reader left */
    ASSERT_EQ(may_fd_close(w), 0);
    SetStdHandle(STD_INPUT_HANDLE, old_in);
}

/* may_file_open's flags and errors as on Linux. */
static void test_file_flags(void)
{
    char dir[MAX_PATH], path[MAX_PATH + 64], buf[16];
    ASSERT_GT(GetTempPathA(MAX_PATH, dir), 0);
    snprintf(path, sizeof path, "%smay-flags-%lu.txt", dir, (unsigned long)GetCurrentProcessId());
    SetFileAttributesA(path, FILE_ATTRIBUTE_NORMAL); /* a failed run's */
    DeleteFileA(path);
    ASSERT_EQ(may_file_open(path, O_RDONLY, 0, MAY_FOREVER), -ENOENT);
    ASSERT_EQ(may_file_open(path, O_WRONLY | O_TRUNC, 0, MAY_FOREVER), -ENOENT);
    int fd = may_file_open(path, O_WRONLY | O_CREAT | O_EXCL, 0644, MAY_FOREVER);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(may_file_open(path, O_WRONLY | O_CREAT | O_EXCL, 0644, MAY_FOREVER), -EEXIST);
    ASSERT_EQ(may_file_write(fd, "abcdef", 6, -1, MAY_FOREVER), 6);
    ASSERT_EQ(may_file_read(fd, buf, 1, 0, MAY_FOREVER), -EACCES); /* write only */
    ASSERT_EQ(may_file_fsync(fd, MAY_FOREVER), 0);
    ASSERT_EQ(may_fd_close(fd), 0);
    /* O_APPEND: every write at the end, whatever the position */
    fd = may_file_open(path, O_RDWR | O_APPEND, 0, MAY_FOREVER);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(may_file_read(fd, buf, 2, 0, MAY_FOREVER), 2);
    ASSERT_EQ(may_write(fd, "gh", 2, MAY_FOREVER), 2);
    ASSERT_EQ(may_file_read(fd, buf, sizeof buf, 0, MAY_FOREVER), 8);
    ASSERT(memcmp(buf, "abcdefgh", 8) == 0);
    ASSERT_EQ(may_fd_close(fd), 0);
    /* O_TRUNC empties it; O_CREAT alone keeps what is there */
    fd = may_file_open(path, O_RDWR | O_CREAT, 0644, MAY_FOREVER);
    ASSERT_EQ(may_file_read(fd, buf, sizeof buf, 0, MAY_FOREVER), 8);
    ASSERT_EQ(may_fd_close(fd), 0);
    fd = may_file_open(path, O_RDWR | O_TRUNC, 0, MAY_FOREVER);
    ASSERT_EQ(may_file_read(fd, buf, sizeof buf, 0, MAY_FOREVER), 0);
    /* removed while open (FILE_SHARE_DELETE), as a POSIX user expects */
    ASSERT(DeleteFileA(path));
    ASSERT_EQ(may_fd_close(fd), 0);
    ASSERT_EQ(may_file_open(path, O_RDONLY, 0, MAY_FOREVER), -ENOENT);
    /* without 0200 a new file is read-only */
    fd = may_file_open(path, O_RDWR | O_CREAT, 0444, MAY_FOREVER);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(may_fd_close(fd), 0);
    DWORD attr = GetFileAttributesA(path);
    ASSERT(attr != INVALID_FILE_ATTRIBUTES && (attr & FILE_ATTRIBUTE_READONLY));
    ASSERT(SetFileAttributesA(path, FILE_ATTRIBUTE_NORMAL));
    ASSERT(DeleteFileA(path));
    /* a directory; a path that is not UTF-8; bad access mode */
    ASSERT_EQ(may_file_open(dir, O_WRONLY, 0, MAY_FOREVER), -EISDIR);
    ASSERT_EQ(may_file_open("\xff\xfe", O_RDONLY, 0, MAY_FOREVER), -EINVAL);
    ASSERT_EQ(may_file_open(path, O_WRONLY | O_RDWR, 0, MAY_FOREVER), -EINVAL);
    /* a UTF-8 name */
    snprintf(path, sizeof path, "%smay-\xc3\xa9t\xc3\xa9-%lu.txt", dir, (unsigned long)GetCurrentProcessId());
    fd = may_file_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644, MAY_FOREVER);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(may_fd_close(fd), 0);
    wchar_t wpath[MAX_PATH + 64];
    ASSERT_GT(MultiByteToWideChar(CP_UTF8, 0, path, -1, wpath, MAX_PATH + 64), 0);
    ASSERT(wcsstr(wpath, L"may-\u00e9t\u00e9-") != NULL);
    ASSERT(DeleteFileW(wpath));
}

static void *suite_co(void *arg)
{
    (void)arg;
    fprintf(stderr, "-- status\n");
    test_status();
    fprintf(stderr, "-- pipes\n");
    test_pipes();
    fprintf(stderr, "-- modes\n");
    test_modes();
    fprintf(stderr, "-- argv\n");
    test_argv();
    fprintf(stderr, "-- env, cwd\n");
    test_env_cwd();
    fprintf(stderr, "-- errors\n");
    test_errors();
    fprintf(stderr, "-- wait, kill\n");
    test_wait_kill();
    fprintf(stderr, "-- many\n");
    test_many();
    fprintf(stderr, "-- no leak\n");
    test_no_leak();
    fprintf(stderr, "-- inherit\n");
    test_inherit();
    fprintf(stderr, "-- one name space\n");
    test_one_namespace();
    fprintf(stderr, "-- standard handles\n");
    test_std_fds();
    fprintf(stderr, "-- file flags\n");
    test_file_flags();
    return NULL;
}

int main(int argc, char **argv)
{
    DWORD n = GetModuleFileNameA(NULL, self_exe, sizeof self_exe);
    ASSERT(n > 0 && n < sizeof self_exe);
    if (argc > 1)
        return child(argc, argv);
    fprintf(stderr, "-- from the main thread\n");
    test_status();
    test_errors();
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, suite_co, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    fprintf(stderr, "OK\n");
    return 0;
}
