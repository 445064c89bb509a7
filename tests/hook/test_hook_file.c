/* test_hook_file: pread, pwrite, preadv, pwritev (and their 64 forms),
 * fsync and fdatasync through libmay_hook.  On a file, in a coroutine,
 * each runs between may_blocking_begin and may_blocking_end (a regular
 * file's call may block in the kernel: the hand-off covers it); on a pipe
 * or a socket, and outside coroutines, it is the plain call.  Results and
 * errno values are the plain calls' either way.
 *
 * The brackets are counted by this program's own may_blocking_begin/end,
 * which the dynamic linker binds the hook library's calls to (the program
 * comes first), and which pass on to libmay's. */
#include "hook_test.h"

#include <dlfcn.h>
#include <sys/socket.h>
#include <sys/uio.h>

static atomic_int begins, ends;
static void (*real_begin)(void), (*real_end)(void);

void may_blocking_begin(void)
{
    atomic_fetch_add(&begins, 1);
    real_begin();
}

void may_blocking_end(void)
{
    atomic_fetch_add(&ends, 1);
    real_end();
}

static int fd, pp[2], sv[2];

/* The brackets taken by one call. */
#define BRACKETS(call, expect_r, expect_errno, nbr)                                       \
    do {                                                                                  \
        int b0_ = atomic_load(&begins), e0_ = atomic_load(&ends);                         \
        errno = 0;                                                                        \
        long r_ = (long)(call);                                                           \
        int err_ = errno;                                                                 \
        ASSERT_EQ(r_, (long)(expect_r));                                                  \
        if ((expect_errno) != 0)                                                          \
            ASSERT_EQ(err_, (expect_errno));                                              \
        ASSERT_EQ(atomic_load(&begins) - b0_, (nbr));                                     \
        ASSERT_EQ(atomic_load(&ends) - e0_, (nbr));                                       \
    } while (0)

static void exercise(int in_co)
{
    char buf[32] = { 0 };
    int br = in_co ? 1 : 0;
    ASSERT_EQ(ftruncate(fd, 0), 0);
    BRACKETS(pwrite(fd, "hello, world", 12, 0), 12, 0, br);
    BRACKETS(pread(fd, buf, 5, 7), 5, 0, br);
    ASSERT(memcmp(buf, "world", 5) == 0);
    BRACKETS(pwrite64(fd, "HELLO", 5, 0), 5, 0, br);
    memset(buf, 0, sizeof buf);
    BRACKETS(pread64(fd, buf, sizeof buf, 0), 12, 0, br);
    ASSERT(memcmp(buf, "HELLO, world", 12) == 0);
    char a[3] = "abc", b[2] = "de";
    struct iovec wv[2] = { { a, 3 }, { b, 2 } };
    BRACKETS(pwritev(fd, wv, 2, 20), 5, 0, br);
    BRACKETS(pwritev64(fd, wv, 1, 25), 3, 0, br);
    char x[4] = { 0 }, y[4] = { 0 };
    struct iovec rv[2] = { { x, 4 }, { y, 4 } };
    BRACKETS(preadv(fd, rv, 2, 20), 8, 0, br);
    ASSERT(memcmp(x, "abcd", 4) == 0 && memcmp(y, "eabc", 4) == 0);
    BRACKETS(preadv64(fd, rv, 1, 21), 4, 0, br);
    ASSERT(memcmp(x, "bcde", 4) == 0);
    BRACKETS(pread(fd, buf, sizeof buf, 1000), 0, 0, br); /* past the end */
    BRACKETS(fsync(fd), 0, 0, br);
    BRACKETS(fdatasync(fd), 0, 0, br);
    BRACKETS(pwrite(fd, buf, 1, -1), -1, EINVAL, br);
    /* pipes and sockets: the plain call's error, no bracket */
    BRACKETS(pread(pp[0], buf, 1, 0), -1, ESPIPE, 0);
    BRACKETS(pwrite(pp[1], "z", 1, 0), -1, ESPIPE, 0);
    BRACKETS(fsync(pp[1]), -1, EINVAL, 0);
    BRACKETS(pread(sv[0], buf, 1, 0), -1, ESPIPE, 0);
    BRACKETS(fdatasync(sv[0]), -1, EINVAL, 0);
    /* bad descriptors */
    BRACKETS(pread(-1, buf, 1, 0), -1, EBADF, 0);
    BRACKETS(fsync(1000), -1, EBADF, 0);
}

static void *co_main(void *arg)
{
    (void)arg;
    exercise(1);
    return NULL;
}

int main(void)
{
    alarm(60);
    real_begin = (void (*)(void))dlsym(RTLD_NEXT, "may_blocking_begin");
    real_end = (void (*)(void))dlsym(RTLD_NEXT, "may_blocking_end");
    ASSERT(real_begin && real_end);
    char path[] = "/tmp/may_hook_file_XXXXXX";
    fd = mkstemp(path);
    ASSERT(fd >= 0);
    unlink(path);
    ASSERT_EQ(pipe(pp), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    exercise(0); /* before the runtime starts: plain calls */
    one_worker();
    may_co_t *c;
    ASSERT_EQ(may_spawn(&c, co_main, NULL, NULL), 0);
    ASSERT_EQ(may_join(c, NULL, MAY_FOREVER), MAY_DONE);
    exercise(0); /* a plain thread while it runs */
    close(fd);
    close(pp[0]);
    close(pp[1]);
    close(sv[0]);
    close(sv[1]);
    printf("test_hook_file: ok\n");
    return 0;
}
