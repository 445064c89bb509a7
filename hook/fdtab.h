/*
 * fdtab.h - libmay_hook's per-fd table (see fdtab.c and hook.c's essay).
 */
#ifndef MAY_HOOK_FDTAB_H
#define MAY_HOOK_FDTAB_H

#include <stdatomic.h>
#include <stdint.h>

/* State bits of one fd (hook_fd.st).  0 means "not looked at yet": the
 * first hooked call that needs to know, in a coroutine, classifies the fd
 * (fstat + F_GETFL) and may switch it to O_NONBLOCK underneath. */
enum {
    HFD_KNOWN = 1 << 0, /* classified */
    HFD_APPNB = 1 << 1, /* the application's view: O_NONBLOCK */
    HFD_OURS = 1 << 2,  /* the hook set O_NONBLOCK underneath */
    HFD_POLL = 1 << 3,  /* a socket or pipe: waits go to the reactor */
    HFD_SOCK = 1 << 4,  /* a socket */
    HFD_FILE = 1 << 5,  /* anything else (regular file, tty, eventfd...):
                           blocking calls are bracketed with
                           may_blocking_begin/end */
    HFD_REG = 1 << 6,   /* the hook waited on it in libmay's reactor */
    HFD_TYPED = 1 << 7, /* HFD_STREAM is known */
    HFD_STREAM = 1 << 8, /* a byte stream (SOCK_STREAM socket or pipe): a
                            short read leaves it empty */
};

/* The application sees a blocking fd that the hook made non-blocking:
 * calls that would block wait cooperatively. */
#define HFD_COOP_MASK (HFD_POLL | HFD_OURS | HFD_APPNB)
#define HFD_COOP (HFD_POLL | HFD_OURS)

typedef struct hook_fd {
    _Atomic uint32_t st;       /* HFD_* */
    _Atomic int64_t rcvtimeo;  /* SO_RCVTIMEO in ns, 0: none */
    _Atomic int64_t sndtimeo;  /* SO_SNDTIMEO in ns, 0: none */
    /* 1 + the readiness ticket taken before the last read that came back
     * short (it emptied a byte stream), 0: none.  A read whose ticket is
     * still that one would say EAGAIN: it waits without the system call. */
    _Atomic int64_t drained;
} hook_fd;

/* The entry of fd, or NULL (fd negative or beyond the table, or create is
 * false and its chunk does not exist yet).  Lock-free; with create, may
 * mmap a chunk (async-signal-safe in practice: one system call). */
hook_fd *may__hook_fd(int fd, int create);

#endif
