/*
 * fdtab.c - libmay_hook's per-fd state: a two-level array indexed by fd.
 *
 * Why a table: every hooked call must know at once whether its fd is one
 * the application left blocking but the hook made non-blocking (the call
 * then waits cooperatively), one the application made non-blocking (the
 * call passes through), or a kind the reactor cannot wait on.  Asking the
 * kernel (fcntl F_GETFL) would cost a system call per call; the table
 * costs two loads.
 *
 * Layout: a fixed array of chunk pointers, chunks of 1024 entries of 24
 * bytes.  The first chunk (fds 0..1023, what most programs use) is static;
 * the others are mmap'ed on first use and published with a CAS, and never
 * freed, so a reader can never touch freed memory and needs no lock.
 * mmap rather than malloc: the table may be grown from a hooked call made
 * in a signal handler or before malloc is usable.
 *
 * Memory ordering: chunk pointers are published with release (the CAS)
 * and read with acquire; the fields of an entry are independent atomics,
 * read and written relaxed (each is a fact about the fd on its own; the
 * kernel call that follows is what orders anything that matters).
 */
#include "fdtab.h"

#include <stddef.h>
#include <sys/mman.h>

#define CHUNK_BITS 10
#define CHUNK_SIZE (1 << CHUNK_BITS)
#define NCHUNKS 4096 /* fds below 4M, as libmay's reactor */

static hook_fd chunk0[CHUNK_SIZE];
static hook_fd *_Atomic chunks[NCHUNKS] = { chunk0 };

hook_fd *may__hook_fd(int fd, int create)
{
    if (fd < 0 || fd >= NCHUNKS * CHUNK_SIZE)
        return NULL;
    if (fd < CHUNK_SIZE)
        return &chunk0[fd];
    _Atomic(hook_fd *) *slot = &chunks[fd >> CHUNK_BITS];
    /* acquire: pairs with the release CAS below (the chunk is zeroed) */
    hook_fd *c = atomic_load_explicit(slot, memory_order_acquire);
    if (!c) {
        if (!create)
            return NULL;
        size_t len = CHUNK_SIZE * sizeof(hook_fd);
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        hook_fd *n = m;
        if (atomic_compare_exchange_strong_explicit(slot, &c, n, memory_order_acq_rel,
                                                    memory_order_acquire))
            c = n;
        else
            munmap(m, len);
    }
    return &c[fd & (CHUNK_SIZE - 1)];
}
