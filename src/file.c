/*
 * file.c - file I/O on the offload pool: may_file_open, may_file_read,
 * may_file_write, may_file_fsync.
 *
 * Why.  epoll says a regular file is always ready, yet read(2) may wait for
 * the disk (or an NFS server, or a FIFO's writer), and a worker that waits
 * stops every coroutine queued on it.  So each call runs on a helper of the
 * offload pool (src/offload.c) while the caller parks.  io_uring could do
 * this without threads; it would sit behind the same calls.
 *
 * Two kinds of job.  read, write and fsync use the caller's buffer, so they
 * cannot be abandoned once a helper runs them: the request lives on the
 * caller's stack and the job is uninterruptible (may__offload): a deadline
 * or cancellation that comes while it runs waits for the end and returns
 * its result.  Still queued, it is taken back and never runs.  open copies
 * the path into a heap request and may be abandoned (a FIFO or a hung file
 * server can block open forever); the drop hook (open_drop) then frees the
 * request and closes a descriptor that arrives late, so none leaks.
 *
 * Each system call is retried on EINTR; errors are its -errno.
 *
 * Lock order and memory ordering: this file has no lock and no shared
 * state of its own.  The helper writes the request's result before the
 * pool claims the job (release) and wakes the caller, whose wait reads the
 * claim with acquire (src/offload.c).
 */
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#ifdef _WIN32
#include "win/sock_win.h"

/* Windows: an fd is a handle's value (src/win/sock_win.h: one name space
 * with the sockets; 0, 1, 2 are the standard handles).  open is
 * CreateFileW on the UTF-16 path, binary always (no CRT, no text mode),
 * shared for reading, writing and deletion as a POSIX user expects (the
 * file can be renamed or removed while open); O_APPEND is FILE_APPEND_DATA
 * without FILE_WRITE_DATA (every write goes to the end, atomically); a
 * new file is read-only when mode lacks 0200, as the CRT makes it.
 * read/write are ReadFile/WriteFile (a count capped at INT_MAX: a short
 * transfer), at the handle's file position or, with an offset, at it;
 * unlike pread/pwrite that also moves the file position (a synchronous
 * handle's rule on Windows).  fsync is FlushFileBuffers.  Errors through
 * the one table (may__win_errno); end of file and a pipe whose writer has
 * gone read 0. */
static ssize_t file_rw(int fd, void *buf, size_t n, int64_t off, int wr)
{
    HANDLE h = may__win_fd_handle(fd);
    if (!h) {
        errno = EBADF;
        return -1;
    }
    OVERLAPPED ov, *pov = NULL;
    if (off >= 0) {
        memset(&ov, 0, sizeof ov);
        ov.Offset = (DWORD)off;
        ov.OffsetHigh = (DWORD)((uint64_t)off >> 32);
        pov = &ov;
    }
    DWORD k = 0, len = n > INT_MAX ? INT_MAX : (DWORD)n;
    if (wr ? WriteFile(h, buf, len, &k, pov) : ReadFile(h, buf, len, &k, pov))
        return (ssize_t)k;
    DWORD e = GetLastError();
    if (!wr && (e == ERROR_HANDLE_EOF || e == ERROR_BROKEN_PIPE))
        return 0;
    errno = -may__win_errno(e);
    return -1;
}

static ssize_t file_read(int fd, void *buf, size_t n, int64_t off)
{
    return file_rw(fd, buf, n, off, 0);
}

static ssize_t file_write(int fd, const void *buf, size_t n, int64_t off)
{
    return file_rw(fd, (void *)buf, n, off, 1);
}

static int file_fsync(int fd)
{
    HANDLE h = may__win_fd_handle(fd);
    if (!h) {
        errno = EBADF;
        return -1;
    }
    if (FlushFileBuffers(h))
        return 0;
    errno = -may__win_errno(GetLastError());
    return -1;
}

/* open(2)'s flags as CreateFileW's (libuv's mapping): fd or -1 with errno. */
static int file_open(const char *path, int flags, mode_t mode)
{
    wchar_t w[PATH_MAX];
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, PATH_MAX) <= 0) {
        errno = EINVAL; /* not UTF-8 */
        return -1;
    }
    DWORD access, disp;
    switch (flags & (O_RDONLY | O_WRONLY | O_RDWR)) {
    case O_RDONLY:
        access = FILE_GENERIC_READ;
        break;
    case O_WRONLY:
        access = FILE_GENERIC_WRITE;
        break;
    case O_RDWR:
        access = FILE_GENERIC_READ | FILE_GENERIC_WRITE;
        break;
    default:
        errno = EINVAL;
        return -1;
    }
    if (flags & O_APPEND)
        access = (access & ~(DWORD)FILE_WRITE_DATA) | FILE_APPEND_DATA;
    switch (flags & (O_CREAT | O_EXCL | O_TRUNC)) {
    case O_CREAT:
        disp = OPEN_ALWAYS;
        break;
    case O_CREAT | O_EXCL:
    case O_CREAT | O_EXCL | O_TRUNC:
        disp = CREATE_NEW;
        break;
    case O_CREAT | O_TRUNC:
        disp = CREATE_ALWAYS;
        break;
    case O_TRUNC:
    case O_TRUNC | O_EXCL:
        disp = TRUNCATE_EXISTING;
        break;
    default: /* 0, O_EXCL alone */
        disp = OPEN_EXISTING;
        break;
    }
    DWORD attr = FILE_ATTRIBUTE_NORMAL;
    if ((flags & O_CREAT) && !(mode & 0200))
        attr = FILE_ATTRIBUTE_READONLY;
    HANDLE h = CreateFileW(w, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                           NULL, disp, attr, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        DWORD e = GetLastError();
        DWORD a = e == ERROR_ACCESS_DENIED ? GetFileAttributesW(w) : INVALID_FILE_ATTRIBUTES;
        if (a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY))
            errno = EISDIR; /* what Linux says for a directory opened to write */
        else
            errno = -may__win_errno(e);
        return -1;
    }
    int fd = may__win_handle_fd(h);
    if (fd < 0) {
        CloseHandle(h);
        errno = EMFILE;
        return -1;
    }
    return fd;
}

static void file_close(int fd)
{
    CloseHandle((HANDLE)(intptr_t)fd);
}
#else
static ssize_t file_read(int fd, void *buf, size_t n, int64_t off)
{
    return off < 0 ? read(fd, buf, n) : pread(fd, buf, n, (off_t)off);
}

static ssize_t file_write(int fd, const void *buf, size_t n, int64_t off)
{
    return off < 0 ? write(fd, buf, n) : pwrite(fd, buf, n, (off_t)off);
}

static int file_fsync(int fd)
{
    return fsync(fd);
}

static int file_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

static void file_close(int fd)
{
    close(fd);
}
#endif

enum { F_READ, F_WRITE, F_FSYNC };

typedef struct file_req {
    int op;         /* F_* */
    int fd;
    void *buf;      /* the caller's buffer */
    size_t n;
    int64_t off;    /* -1: the file offset */
    ssize_t ret;    /* bytes or -errno */
} file_req;

static void *file_job(void *arg)
{
    file_req *q = arg;
    ssize_t r;
    do {
        switch (q->op) {
        case F_READ:
            r = file_read(q->fd, q->buf, q->n, q->off);
            break;
        case F_WRITE:
            r = file_write(q->fd, q->buf, q->n, q->off);
            break;
        default:
            r = file_fsync(q->fd);
            break;
        }
    } while (r < 0 && errno == EINTR);
    q->ret = r < 0 ? -errno : r;
    return NULL;
}

/* The request lives on the caller's stack: the job is uninterruptible once
 * started, so the caller outlives it. */
static ssize_t file_op(file_req *q, int64_t deadline)
{
    if (q->fd < 0 || (q->off < -1))
        return -EINVAL;
    if (q->n > SSIZE_MAX)
        q->n = SSIZE_MAX;
    int r = may__offload(file_job, q, NULL, NULL, 1, deadline);
    return r < 0 ? r : q->ret;
}

ssize_t may_file_read(int fd, void *buf, size_t n, int64_t off, int64_t deadline)
{
    file_req q = { .op = F_READ, .fd = fd, .buf = buf, .n = n, .off = off };
    return file_op(&q, deadline);
}

ssize_t may_file_write(int fd, const void *buf, size_t n, int64_t off, int64_t deadline)
{
    file_req q = { .op = F_WRITE, .fd = fd, .buf = (void *)buf, .n = n, .off = off };
    return file_op(&q, deadline);
}

int may_file_fsync(int fd, int64_t deadline)
{
    file_req q = { .op = F_FSYNC, .fd = fd, .off = -1 };
    return (int)file_op(&q, deadline);
}

typedef struct open_req {
    int flags;
    mode_t mode;
    int ret; /* fd or -errno */
    char path[];
} open_req;

static void *open_job(void *arg)
{
    open_req *q = arg;
    int fd;
    do
        fd = file_open(q->path, q->flags, q->mode);
    while (fd < 0 && errno == EINTR);
    q->ret = fd < 0 ? -errno : fd;
    return NULL;
}

/* An abandoned open must not leak the descriptor it made. */
static void open_drop(void *arg, void *result, bool ran)
{
    (void)result;
    open_req *q = arg;
    if (ran && q->ret >= 0)
        file_close(q->ret);
    free(q);
}

int may_file_open(const char *path, int flags, mode_t mode, int64_t deadline)
{
    if (!path)
        return -EINVAL;
    size_t len = strlen(path);
    if (len >= PATH_MAX)
        return -ENAMETOOLONG;
    open_req *q = malloc(sizeof *q + len + 1);
    if (!q)
        return -ENOMEM;
    q->flags = flags;
    q->mode = mode;
    q->ret = -EIO;
    memcpy(q->path, path, len + 1);
    /* Abandonable (a FIFO or a hung NFS server can block open forever): the
     * request is heap memory and open_drop closes a late descriptor. */
    int r = may_offload_ex(open_job, q, NULL, open_drop, deadline);
    if (r < 0)
        return r;
    r = q->ret;
    free(q);
    return r;
}
