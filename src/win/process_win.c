/*
 * process_win.c - child processes on Windows (docs/PROCESS.md, "Windows"):
 * the may_process_* calls of include/may.h, as libuv's uv_spawn does them
 * there, and may_read / may_write on the fds that are not sockets (the
 * pipes, files, consoles), which io.c hands here.
 *
 * Spawning.  CreateProcessW with the program found as the Linux side finds
 * it (the parent's PATH, never the current directory unless PATH says so;
 * ".exe" appended to a name without an extension, as CreateProcess does),
 * a command line made from argv by the MSVCRT quoting rules (what the
 * child's CRT, CommandLineToArgvW and Go undo), a sorted environment block
 * and the working directory.  Strings are UTF-8 and become UTF-16.  The
 * child gets its three standard handles and nothing else: each is an
 * inheritable handle made for this spawn only (a duplicate of the source,
 * the child's end of a new pipe, or NUL) and named in
 * PROC_THREAD_ATTRIBUTE_HANDLE_LIST, so no other inheritable handle of the
 * program leaks into it (Linux's "descriptors 0, 1, 2 and no other");
 * every one of them is closed in the parent once CreateProcess returns.
 * The window in which they are inheritable is guarded by wproc_lock, so a
 * concurrent spawn of ours never inherits another's even where the handle
 * list is not honoured; a CreateProcess of someone else (system()) in that
 * window can still inherit them, as with libuv.
 *
 * Fds.  On Windows every fd of the API is a kernel handle's value as an
 * int: sockets, the pipes here, may_file_open's files (src/file.c), so
 * they share the one name space of the process's handles and never
 * collide; 0, 1 and 2 mean the standard handles (GetStdHandle), never a
 * handle value of ours (0 is no handle, 1 and 2 are not multiples of 4).
 * A value must be below MAY__WIN_FD_LIMIT (2^22, io.c's fd table; handle
 * values are far below in practice): one that is not is closed and
 * -EMFILE.  The
 * fd helpers (may__win_fd_*) are at the end of this file.
 *
 * Pipes.  Anonymous pipes (synchronous handles: Windows has no readiness
 * for them); the parent's end is an fd as above, which may_read and
 * may_write serve on the offload pool (wfd_*, below):
 * each call is one ReadFile or WriteFile on a helper thread while the
 * caller parks.  As with src/file.c the call uses the caller's buffer, so
 * it is uninterruptible once a helper runs it: a deadline or cancellation
 * that comes while it blocks waits for its end (the child writes, exits,
 * or is killed).  Each pending call holds a helper (64 by default).
 *
 * Exit.  No thread per child: RegisterWaitForSingleObject on the process
 * handle (the system's wait threads watch up to 63 handles each) fires the
 * process's may_event once it is signalled; may_process_wait checks the
 * handle and waits on the event with the caller's deadline and
 * cancellation.  The status is the exit code (GetExitCodeProcess), as Go's
 * ProcessState.ExitCode() on Windows; may_process_kill is TerminateProcess
 * with exit code 1, as Go's Process.Kill and libuv's uv_process_kill.
 * Windows has no zombies: the handle keeps the exit code (and the pid
 * reserved) until may_process_free closes it, and a child still running
 * then just runs on.
 *
 * Lock order: wproc_lock (an SRWLOCK) is a leaf, held across the handle
 * setup and CreateProcessW only.  Memory ordering: nothing here is shared
 * between threads except through the kernel (the process handle) and the
 * event (may_event_fire / may_event_wait order what they guard).
 */
#include "../internal.h"
#include "sock_win.h"

#include <stdio.h>
#include <wchar.h>

/* The first version of may_process_opts_t ended with .flags. */
#define WPROC_OPTS_V1_SIZE (offsetof(may_process_opts_t, flags) + sizeof(unsigned))
#define WPROC_FLAGS (MAY_PROCESS_SETSID | MAY_PROCESS_NO_PIDFD)
#define WPROC_PIPE_SIZE 65536 /* libuv's */

struct may_process {
    HANDLE h;              /* the process, until may_process_free */
    HANDLE wait;           /* RegisterWaitForSingleObject's */
    DWORD pid;
    int fd[3];             /* the parent's pipe ends (handle values), -1: none */
    may_event_t *exited;   /* fired once h is signalled */
};

static SRWLOCK wproc_lock = SRWLOCK_INIT;

/* A Win32 error of the spawn as -errno. */
static int wproc_err(DWORD e)
{
    switch (e) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
        return -ENOENT;
    case ERROR_DIRECTORY:
        return -ENOTDIR;
    case ERROR_BAD_EXE_FORMAT:
    case ERROR_EXE_MACHINE_TYPE_MISMATCH:
        return -ENOEXEC;
    case ERROR_FILENAME_EXCED_RANGE:
        return -ENAMETOOLONG;
    case ERROR_NO_UNICODE_TRANSLATION:
        return -EINVAL;
    default:
        return may__win_errno(e);
    }
}

/* ---- strings ------------------------------------------------------------- */

/* UTF-8 s as a malloc'd UTF-16 string: 0 or -EINVAL (not UTF-8), -ENOMEM. */
static int wproc_wide(const char *s, wchar_t **out)
{
    *out = NULL;
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    if (n <= 0)
        return -EINVAL;
    wchar_t *w = malloc((size_t)n * sizeof *w);
    if (!w)
        return -ENOMEM;
    MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n);
    *out = w;
    return 0;
}

/* argv as one command line, quoted by the MSVCRT rules: an argument that
 * is empty or holds a space, tab, newline or quote is quoted; inside the
 * quotes, backslashes are doubled before a quote (which gets one more) and
 * before the closing quote; other backslashes stay as they are. */
static char *wproc_cmdline(const char *const argv[])
{
    size_t cap = 1;
    for (int i = 0; argv[i]; i++)
        cap += 2 * strlen(argv[i]) + 3;
    char *s = malloc(cap), *d = s;
    if (!s)
        return NULL;
    for (int i = 0; argv[i]; i++) {
        const char *a = argv[i];
        if (i)
            *d++ = ' ';
        if (*a && !strpbrk(a, " \t\n\v\"")) {
            size_t n = strlen(a);
            memcpy(d, a, n);
            d += n;
            continue;
        }
        *d++ = '"';
        for (const char *c = a;; c++) {
            size_t bs = 0;
            while (*c == '\\') {
                bs++;
                c++;
            }
            if (!*c) {
                memset(d, '\\', 2 * bs);
                d += 2 * bs;
                break;
            }
            if (*c == '"') {
                memset(d, '\\', 2 * bs + 1);
                d += 2 * bs + 1;
            } else {
                memset(d, '\\', bs);
                d += bs;
            }
            *d++ = *c;
        }
        *d++ = '"';
    }
    *d = 0;
    return s;
}

/* The length of the name in "NAME=value" (a leading '=' belongs to the
 * name, as in Windows' "=C:=C:\dir"). */
static size_t wproc_namelen(const wchar_t *s)
{
    const wchar_t *e = s[0] ? wcschr(s + 1, L'=') : NULL;
    return e ? (size_t)(e - s) : wcslen(s);
}

/* Windows wants the block sorted by name, case-insensitively. */
static int wproc_envcmp(const void *a, const void *b)
{
    const wchar_t *x = *(const wchar_t *const *)a, *y = *(const wchar_t *const *)b;
    return CompareStringOrdinal(x, (int)wproc_namelen(x), y, (int)wproc_namelen(y), TRUE) - 2;
}

/* env as a sorted UTF-16 block.  SYSTEMROOT is added from the parent's
 * when env lacks it (Winsock fails in a child without it; libuv does the
 * same). */
static int wproc_envblock(const char *const *env, wchar_t **out)
{
    *out = NULL;
    size_t n = 0;
    while (env[n])
        n++;
    wchar_t **v = calloc(n + 1, sizeof *v), *blk = NULL;
    if (!v)
        return -ENOMEM;
    int r = 0, has_root = 0;
    size_t k = 0, total = 1;
    for (; k < n; k++) {
        if ((r = wproc_wide(env[k], &v[k])) < 0)
            goto out;
        if (wproc_namelen(v[k]) == 10 && _wcsnicmp(v[k], L"SYSTEMROOT", 10) == 0)
            has_root = 1;
        total += wcslen(v[k]) + 1;
    }
    if (!has_root) {
        wchar_t root[MAX_PATH];
        DWORD m = GetEnvironmentVariableW(L"SYSTEMROOT", root, MAX_PATH);
        if (m > 0 && m < MAX_PATH) {
            size_t len = 11 + m + 1;
            if (!(v[k] = malloc(len * sizeof(wchar_t)))) {
                r = -ENOMEM;
                goto out;
            }
            swprintf(v[k], len, L"SYSTEMROOT=%ls", root);
            total += len;
            k++;
        }
    }
    qsort(v, k, sizeof *v, wproc_envcmp);
    if (!(blk = malloc((total + 1) * sizeof *blk))) {
        r = -ENOMEM;
        goto out;
    }
    wchar_t *d = blk;
    for (size_t i = 0; i < k; i++) {
        size_t len = wcslen(v[i]) + 1;
        memcpy(d, v[i], len * sizeof *d);
        d += len;
    }
    *d++ = 0;
    if (d == blk + 1)
        *d = 0; /* an empty block is two NULs */
    *out = blk;
out:
    for (size_t i = 0; i < n + 1; i++)
        free(v[i]);
    free(v);
    return r;
}

/* ---- finding the program ------------------------------------------------- */

static int wproc_is_sep(wchar_t c)
{
    return c == L'\\' || c == L'/' || c == L':';
}

/* 0 when path names a file, -EACCES for a directory, else -ENOENT. */
static int wproc_check_file(const wchar_t *path)
{
    DWORD a = GetFileAttributesW(path);
    if (a == INVALID_FILE_ATTRIBUTES)
        return GetLastError() == ERROR_ACCESS_DENIED ? -EACCES : -ENOENT;
    return (a & FILE_ATTRIBUTE_DIRECTORY) ? -EACCES : 0;
}

/* dir (dlen characters; 0: none) joined with name, with ".exe" appended
 * when name has no extension, as CreateProcess does; checked.  0 with
 * *out malloc'd, or -errno. */
static int wproc_try(const wchar_t *dir, size_t dlen, const wchar_t *name, wchar_t **out)
{
    const wchar_t *base = name;
    for (const wchar_t *c = name; *c; c++)
        if (wproc_is_sep(*c))
            base = c + 1;
    int ext = wcschr(base, L'.') != NULL;
    size_t nlen = wcslen(name), len = dlen + 1 + nlen + 5;
    wchar_t *p = malloc(len * sizeof *p);
    if (!p)
        return -ENOMEM;
    int sep = dlen && !wproc_is_sep(dir[dlen - 1]);
    swprintf(p, len, L"%.*ls%ls%ls%ls", (int)dlen, dir, sep ? L"\\" : L"", name,
             ext ? L"" : L".exe");
    int r = wproc_check_file(p);
    if (r == -ENOENT && !ext) {
        p[wcslen(p) - 4] = 0; /* a directory of that name: -EACCES, as on Linux */
        DWORD a = GetFileAttributesW(p);
        if (a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY))
            r = -EACCES;
    }
    if (r < 0) {
        free(p);
        return r;
    }
    *out = p;
    return 0;
}

/* The program to run (see the essay): 0 with *out malloc'd, or -ENOENT,
 * -EACCES, -ENOMEM, -EINVAL. */
static int wproc_lookup(const wchar_t *file, const wchar_t *cwd, wchar_t **out)
{
    *out = NULL;
    if (!*file)
        return -ENOENT;
    int path_like = 0;
    for (const wchar_t *c = file; *c; c++)
        path_like |= wproc_is_sep(*c);
    if (path_like) {
        /* relative to .cwd when set (the Linux rule); "C:x", "\x", "/x",
         * "\\server\x" are not relative to a directory */
        int rel = !(file[0] == L'\\' || file[0] == L'/' || file[1] == L':');
        return rel && cwd ? wproc_try(cwd, wcslen(cwd), file, out) : wproc_try(NULL, 0, file, out);
    }
    wchar_t *path = NULL;
    DWORD n = GetEnvironmentVariableW(L"PATH", NULL, 0);
    if (n > 0) {
        if (!(path = malloc((size_t)n * sizeof *path)))
            return -ENOMEM;
        if (GetEnvironmentVariableW(L"PATH", path, n) >= n)
            path[0] = 0;
    } else {
        /* no PATH: the system directories (Linux: "/bin:/usr/bin") */
        wchar_t sys[MAX_PATH], win[MAX_PATH];
        UINT a = GetSystemDirectoryW(sys, MAX_PATH), b = GetWindowsDirectoryW(win, MAX_PATH);
        if (!(path = malloc((2 * MAX_PATH + 2) * sizeof *path)))
            return -ENOMEM;
        swprintf(path, 2 * MAX_PATH + 2, L"%ls;%ls", a && a < MAX_PATH ? sys : L"",
                 b && b < MAX_PATH ? win : L"");
    }
    int err = -ENOENT;
    for (wchar_t *s = path; *s;) {
        wchar_t *e = wcschr(s, L';');
        size_t len = e ? (size_t)(e - s) : wcslen(s);
        wchar_t *d = s;
        if (len >= 2 && d[0] == L'"' && d[len - 1] == L'"') {
            d++;
            len -= 2;
        }
        if (len) { /* an empty entry is skipped: the current directory is
                      searched only when PATH names it */
            int r = wproc_try(d, len, file, out);
            if (r == 0 || r == -ENOMEM) {
                err = r;
                break;
            }
            if (r == -EACCES)
                err = r;
        }
        if (!e)
            break;
        s = e + 1;
    }
    free(path);
    return err;
}

/* ---- the child's standard handles ---------------------------------------- */

/* An inheritable duplicate of h (NULL when h is none): 0 or -errno. */
static int wproc_dup_inherit(HANDLE h, HANDLE *out)
{
    *out = NULL;
    if (h == NULL || h == INVALID_HANDLE_VALUE)
        return 0;
    if (!DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), out, 0, TRUE,
                         DUPLICATE_SAME_ACCESS))
        return wproc_err(GetLastError());
    return 0;
}

/* The child's handle i (*ch, inheritable, or NULL) and, for a pipe, the
 * parent's end as an fd (*pfd).  0 or -errno; nothing is left open on
 * failure. */
static int wproc_stdio(const may_process_opts_t *o, int i, HANDLE *ch, int *pfd)
{
    static const DWORD std[3] = { STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE };
    *ch = NULL;
    switch (o->stdio[i]) {
    case MAY_STDIO_INHERIT:
        return wproc_dup_inherit(GetStdHandle(std[i]), ch);
    case MAY_STDIO_FD: {
        HANDLE h = may__win_fd_handle(o->fd[i]);
        return h ? wproc_dup_inherit(h, ch) : -EBADF;
    }
    case MAY_STDIO_NULL: {
        SECURITY_ATTRIBUTES sa = { sizeof sa, NULL, TRUE };
        HANDLE h = CreateFileW(L"NUL", i == 0 ? GENERIC_READ : GENERIC_WRITE,
                               FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING, 0, NULL);
        if (h == INVALID_HANDLE_VALUE)
            return wproc_err(GetLastError());
        *ch = h;
        return 0;
    }
    default: { /* MAY_STDIO_PIPE */
        HANDLE rd, wr;
        if (!CreatePipe(&rd, &wr, NULL, WPROC_PIPE_SIZE))
            return wproc_err(GetLastError());
        HANDLE mine = i == 0 ? wr : rd, theirs = i == 0 ? rd : wr;
        int fd = may__win_handle_fd(mine);
        if (fd < 0) {
            CloseHandle(rd);
            CloseHandle(wr);
            return fd;
        }
        if (!SetHandleInformation(theirs, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT)) {
            int r = wproc_err(GetLastError());
            CloseHandle(rd);
            CloseHandle(wr);
            return r;
        }
        *ch = theirs;
        *pfd = fd;
        return 0;
    }
    }
}

/* ---- spawning ------------------------------------------------------------ */

static VOID CALLBACK wproc_exited(PVOID arg, BOOLEAN timed_out)
{
    (void)timed_out;
    may_event_fire(((may_process_t *)arg)->exited);
}

static void wproc_destroy(may_process_t *p)
{
    for (int i = 0; i < 3; i++)
        if (p->fd[i] >= 0)
            may_fd_close(p->fd[i]);
    if (p->wait)
        UnregisterWaitEx(p->wait, INVALID_HANDLE_VALUE); /* and its callback */
    if (p->h)
        CloseHandle(p->h);
    if (p->exited)
        may_event_free(p->exited);
    free(p);
}

int may_process_spawn_sized(may_process_t **out, const char *file, const char *const argv[],
                            const may_process_opts_t *uopts, size_t opts_size)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!file || !argv)
        return -EINVAL;
    may_process_opts_t o = { 0 };
    if (uopts) {
        int r = may__abi_in(&o, sizeof o, uopts, opts_size, WPROC_OPTS_V1_SIZE);
        if (r < 0)
            return r;
    }
    if (o.flags & ~WPROC_FLAGS)
        return -EINVAL;
    for (int i = 0; i < 3; i++) {
        if (o.stdio[i] < MAY_STDIO_INHERIT || o.stdio[i] > MAY_STDIO_FD)
            return -EINVAL;
        if (o.stdio[i] == MAY_STDIO_FD && o.fd[i] < 0)
            return -EBADF;
    }
    may_process_t *p = calloc(1, sizeof *p);
    wchar_t *wfile = NULL, *wcwd = NULL, *app = NULL, *wcmd = NULL, *env = NULL;
    char *cmd = NULL;
    HANDLE ch[3] = { NULL, NULL, NULL };
    LPPROC_THREAD_ATTRIBUTE_LIST al = NULL;
    int r = -ENOMEM, locked = 0;
    if (!p)
        goto out;
    p->fd[0] = p->fd[1] = p->fd[2] = -1;
    if ((r = wproc_wide(file, &wfile)) < 0)
        goto out;
    if (o.cwd) {
        if ((r = wproc_wide(o.cwd, &wcwd)) < 0)
            goto out;
        DWORD a = GetFileAttributesW(wcwd);
        if (a == INVALID_FILE_ATTRIBUTES) {
            r = wproc_err(GetLastError());
            goto out;
        }
        if (!(a & FILE_ATTRIBUTE_DIRECTORY)) {
            r = -ENOTDIR;
            goto out;
        }
    }
    if ((r = wproc_lookup(wfile, wcwd, &app)) < 0)
        goto out;
    r = -ENOMEM;
    if (!(cmd = wproc_cmdline(argv)))
        goto out;
    if ((r = wproc_wide(cmd, &wcmd)) < 0)
        goto out;
    if (wcslen(wcmd) >= 32767) {
        r = -E2BIG; /* CreateProcess's limit */
        goto out;
    }
    if (o.env && (r = wproc_envblock(o.env, &env)) < 0)
        goto out;
    if ((r = may_event_new(&p->exited)) < 0)
        goto out;

    /* CreateProcess takes milliseconds, and so may the wait for the lock:
     * the worker is handed off if it lasts (may_blocking_begin) */
    may_blocking_begin();
    AcquireSRWLockExclusive(&wproc_lock);
    locked = 1;
    HANDLE list[3];
    int nlist = 0;
    for (int i = 0; i < 3; i++) {
        if ((r = wproc_stdio(&o, i, &ch[i], &p->fd[i])) < 0)
            goto out;
        if (ch[i])
            list[nlist++] = ch[i];
    }
    STARTUPINFOEXW si;
    memset(&si, 0, sizeof si);
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = ch[0];
    si.StartupInfo.hStdOutput = ch[1];
    si.StartupInfo.hStdError = ch[2];
    DWORD flags = CREATE_UNICODE_ENVIRONMENT;
    if (o.flags & MAY_PROCESS_SETSID)
        flags |= CREATE_NEW_PROCESS_GROUP;
    if (nlist) {
        SIZE_T sz = 0;
        InitializeProcThreadAttributeList(NULL, 1, 0, &sz);
        r = -ENOMEM;
        if (!(al = malloc(sz)))
            goto out;
        if (!InitializeProcThreadAttributeList(al, 1, 0, &sz)) {
            free(al);
            al = NULL;
            r = wproc_err(GetLastError());
            goto out;
        }
        if (!UpdateProcThreadAttribute(al, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, list,
                                       (SIZE_T)nlist * sizeof(HANDLE), NULL, NULL)) {
            r = wproc_err(GetLastError());
            goto out;
        }
        si.lpAttributeList = al;
        flags |= EXTENDED_STARTUPINFO_PRESENT;
    }
    PROCESS_INFORMATION pi;
    BOOL ok;
    DWORD e = 0;
    for (int tries = 0;; tries++) {
        ok = CreateProcessW(app, wcmd, NULL, NULL, nlist > 0, flags, env, wcwd, &si.StartupInfo, &pi);
        if (ok || (e = GetLastError()) != ERROR_INTERNAL_ERROR || tries == 2)
            break;
        /* seen only under wine 8.0, about once in a thousand spawns while
         * other children start and end: a new try succeeds */
    }
    if (!ok) {
        r = wproc_err(e);
        goto out;
    }
    CloseHandle(pi.hThread);
    p->h = pi.hProcess;
    p->pid = pi.dwProcessId;
    for (int i = 0; i < 3; i++) /* the child has its own now */
        if (ch[i]) {
            CloseHandle(ch[i]);
            ch[i] = NULL;
        }
    ReleaseSRWLockExclusive(&wproc_lock);
    may_blocking_end();
    locked = 0;
    if (!RegisterWaitForSingleObject(&p->wait, p->h, wproc_exited, p, INFINITE,
                                     WT_EXECUTEONLYONCE)) {
        /* a child we cannot wait for is no use */
        r = wproc_err(GetLastError());
        p->wait = NULL;
        TerminateProcess(p->h, 1);
        goto out;
    }
    *out = p;
    p = NULL;
    r = 0;
out:
    for (int i = 0; i < 3; i++)
        if (ch[i])
            CloseHandle(ch[i]);
    if (locked) {
        ReleaseSRWLockExclusive(&wproc_lock);
        may_blocking_end();
    }
    if (al) {
        DeleteProcThreadAttributeList(al);
        free(al);
    }
    if (p)
        wproc_destroy(p);
    free(wfile);
    free(wcwd);
    free(app);
    free(cmd);
    free(wcmd);
    free(env);
    return r;
}

/* ---- the handle ---------------------------------------------------------- */

pid_t may_process_pid(const may_process_t *p)
{
    return p ? (pid_t)p->pid : -1;
}

#include "../process_stdio.h" /* may_process_stdio, _take_stdio, _close_stdio */

int may_process_wait(may_process_t *p, int *status, int64_t deadline)
{
    if (!p)
        return -EINVAL;
    for (;;) {
        /* exited: the status even for a cancelled caller or MAY_NOWAIT */
        if (WaitForSingleObject(p->h, 0) == WAIT_OBJECT_0) {
            DWORD code;
            if (!GetExitCodeProcess(p->h, &code))
                return may__win_errno(GetLastError());
            if (status)
                *status = (int)code;
            return 0;
        }
        int r = may_event_wait(p->exited, deadline);
        if (r < 0)
            return r;
    }
}

int may_process_kill(may_process_t *p, int sig)
{
    if (!p || sig < 0)
        return -EINVAL;
    if (WaitForSingleObject(p->h, 0) == WAIT_OBJECT_0)
        return -ESRCH;
    if (sig == 0)
        return 0;
    if (TerminateProcess(p->h, 1))
        return 0;
    DWORD e = GetLastError();
    /* ERROR_ACCESS_DENIED: it is exiting */
    return WaitForSingleObject(p->h, 0) == WAIT_OBJECT_0 ? -ESRCH : may__win_errno(e);
}

void may_process_free(may_process_t *p)
{
    if (p)
        wproc_destroy(p);
}

/* ---- may_read / may_write on what is not a socket ------------------------ */

typedef struct wfd_req {
    HANDLE h;
    void *buf;
    DWORD n;
    int wr;
    ssize_t ret; /* bytes or -errno */
} wfd_req;

static void *wfd_job(void *arg)
{
    wfd_req *q = arg;
    DWORD k = 0;
    BOOL ok = q->wr ? WriteFile(q->h, q->buf, q->n, &k, NULL) : ReadFile(q->h, q->buf, q->n, &k, NULL);
    if (ok) {
        q->ret = (ssize_t)k;
    } else {
        DWORD e = GetLastError();
        /* the writer has gone, or a file's end: end of file */
        q->ret = !q->wr && (e == ERROR_BROKEN_PIPE || e == ERROR_HANDLE_EOF) ? 0 : may__win_errno(e);
    }
    return NULL;
}

/* io.c's may_read (wr 0) and may_write (wr 1) when fd is not a socket:
 * one ReadFile or WriteFile on the offload pool, uninterruptible once a
 * helper runs it (see the essay). */
ssize_t may__win_fd_rw(int fd, void *buf, size_t n, int wr, int64_t deadline)
{
    HANDLE h = may__win_fd_handle(fd);
    if (!h)
        return -EBADF;
    if (n == 0)
        return 0;
    wfd_req q = { .h = h, .buf = buf, .n = n > (1u << 30) ? 1u << 30 : (DWORD)n, .wr = wr };
    int r = may__offload(wfd_job, &q, NULL, NULL, 1, deadline);
    return r < 0 ? r : q.ret;
}

/* ---- fds that are not sockets -------------------------------------------- */

static const DWORD wfd_std[3] = { STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE };

/* The handle fd names (0, 1, 2: the standard handles), or NULL when it
 * names none: a negative value, one that is not a multiple of 4 (the
 * kernel would ignore its low bits and find another handle), or one that
 * is no open handle.  Sockets are handles too and pass. */
HANDLE may__win_fd_handle(int fd)
{
    if (fd < 0)
        return NULL;
    if (fd <= 2) {
        HANDLE h = GetStdHandle(wfd_std[fd]);
        return h == INVALID_HANDLE_VALUE ? NULL : h;
    }
    DWORD fl;
    if ((fd & 3) || fd >= MAY__WIN_FD_LIMIT || !GetHandleInformation((HANDLE)(intptr_t)fd, &fl))
        return NULL;
    return (HANDLE)(intptr_t)fd;
}

/* h's value as an fd, or -EMFILE when it is not below MAY__WIN_FD_LIMIT
 * (the caller closes h then). */
int may__win_handle_fd(HANDLE h)
{
    uintptr_t v = (uintptr_t)h;
    return v > 2 && v < MAY__WIN_FD_LIMIT ? (int)v : -EMFILE;
}

/* may_fd_close of what closesocket says is not a socket: CloseHandle.
 * 0, 1, 2 close the standard handle and clear it (SetStdHandle), as
 * close(0) on Linux leaves descriptor 0 free: a later call on it is
 * -EBADF; stdout and stderr that are one handle (a console) leave it open
 * for the other, as dup'd descriptors do.  The CRT's fd 0, 1 or 2 is not
 * closed.  0 or a Win32 error. */
DWORD may__win_fd_close(int fd)
{
    if (fd < 0 || (fd > 2 && ((fd & 3) || fd >= MAY__WIN_FD_LIMIT)))
        return ERROR_INVALID_HANDLE;
    if (fd > 2)
        return CloseHandle((HANDLE)(intptr_t)fd) ? 0 : GetLastError();
    HANDLE h = GetStdHandle(wfd_std[fd]);
    if (h == NULL || h == INVALID_HANDLE_VALUE)
        return ERROR_INVALID_HANDLE;
    SetStdHandle(wfd_std[fd], NULL);
    if (fd > 0 && GetStdHandle(wfd_std[3 - fd]) == h)
        return 0;
    return CloseHandle(h) ? 0 : GetLastError();
}
