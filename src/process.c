/*
 * process.c - child processes for coroutines (docs/PROCESS.md).
 *
 * Why.  A coroutine that runs a program must not block its worker while the
 * program runs, nor while it reads the program's output; and the program
 * must not inherit the descriptors of every connection the process has
 * open.  So: the parent's ends of the pipes are ordinary non-blocking,
 * close-on-exec descriptors that may_read and may_write wait on; the exit
 * is an event the poller (or a SIGCHLD watcher) reports; and the child gets
 * 0, 1, 2 and nothing else.
 *
 * Spawning.  posix_spawn, which glibc (2.24 and later) implements with
 * clone(CLONE_VM | CLONE_VFORK): no page tables are copied, however big
 * the parent, no atfork handler runs (src/fork.c's prepare handler, which
 * takes every lock of the runtime, is not involved), and the child's exec
 * errno comes back as posix_spawn's result, so a missing program is
 * -ENOENT from may_process_spawn, not an exit status of 127.  The calling
 * thread is suspended until the child has exec'd (a few hundred
 * microseconds), so the call is bracketed with may_blocking_begin/_end: a
 * worker stuck there for long is handed off.  The child's actions, in
 * order: dup2 each stdio source onto 0, 1, 2; chdir to .cwd; close every
 * descriptor from 3 up (closefrom, glibc 2.34), so even a descriptor the
 * program made without close-on-exec stays behind; reset every signal to
 * its default disposition and unblock them all (SETSIGDEF, SETSIGMASK), so
 * the child inherits neither libmay's nor the program's handlers, ignored
 * signals or mask.  Every source of a dup2 is moved above 2 first (in the
 * parent, F_DUPFD_CLOEXEC): a pipe made while the parent's stdin is closed
 * can get descriptor 0, and dup2 onto 0 would then clobber it before it was
 * copied.  Every descriptor libmay itself makes is close-on-exec too (the
 * pipes: pipe2(O_CLOEXEC); the pidfd: always), for programs that fork and
 * exec by other means.
 *
 * The program is looked up here, not by posix_spawnp: in $PATH of the
 * parent (as Go's exec.LookPath; "/bin:/usr/bin" when unset) when the name
 * has no slash, else relative to .cwd (or the current directory), and it
 * must be an executable regular file (-ENOENT, -EACCES); a match through a
 * relative $PATH entry is made absolute when .cwd is set.  That also gives
 * these errors where posix_spawn cannot report the exec errno: valgrind and
 * qemu-user turn the vfork-like clone into a fork, and an exec that fails
 * there shows only as exit status 127.  .cwd is checked the same way
 * (-ENOENT, -ENOTDIR, -EACCES).
 *
 * Exit notification, two modes, chosen per process:
 *
 *   pidfd    pidfd_open(pid) right after the spawn (Linux 5.3).  A pidfd
 *            polls readable once the child has exited, so may_process_wait
 *            is: try waitpid(pid, WNOHANG); if it is still running,
 *            may_fd_wait(pidfd, MAY_READ, deadline) (the reactor parks the
 *            coroutine, with deadline and cancellation for free); again.
 *   SIGCHLD  where pidfd_open fails with ENOSYS (older kernels, valgrind),
 *            with MAY_PROCESS_NO_PIDFD, or when $MAY_NO_PIDFD=1.  One
 *            reaper thread, started on first use and kept for the
 *            process's life, waits for SIGCHLD through the public watcher
 *            (may_signal_new, src/signal.c); on each delivery it calls
 *            waitpid(pid, WNOHANG) for every process of this mode not yet
 *            reaped - only those: waitpid(-1) would steal the statuses of
 *            the program's other children - and fires each reaped one's
 *            event, on which may_process_wait waits.  A child can exit
 *            before the spawner has put it on the list (its SIGCHLD finds
 *            nothing to reap): so the spawner tries waitpid itself once it
 *            is on the list, and the reaper scans once after its watcher
 *            is in place.  An exit after either of those raises a SIGCHLD
 *            that the next scan sees.  The reaper also rescans once a
 *            second (PROC_RESCAN_NS), a safety net for a SIGCHLD that never
 *            reaches the watcher.
 *
 * No zombie.  A process is reaped (waitpid) exactly once, under proc_lock,
 * by whoever finds it exited first: a waiter, may_process_free, or a
 * reaper.  may_process_free of a child still running hands it over:
 *
 *   pidfd    to the orphan list and its thread, which polls the orphans'
 *            pidfds (plain poll(2), not the runtime's poller: it must work
 *            while the runtime is shut down) and an eventfd that announces
 *            new ones, reaps whatever exited, and ends when none is left.
 *   SIGCHLD  it stays on the reaper's list, marked orphan; the reaper frees
 *            it once reaped.
 *
 * Both reapers are plain threads, not coroutines, so may_shutdown is never
 * held up by a child that runs on (a coroutine would count as alive and
 * make it -EBUSY for as long as the child lived); they block every signal.
 * A child still running when the program exits is re-parented to init (or
 * the nearest subreaper), which reaps it.
 *
 * Lifetime in SIGCHLD mode.  The reaper fires a process's event after it
 * has dropped proc_lock, while its owner may be freeing it: so a process
 * has a reference count under proc_lock, one for its owner and one the
 * reaper holds while it fires; whoever drops the last frees it.
 *
 * Lock order: proc_lock (rank OBJECT, src/lockrank.h) is a leaf.  Under it
 * only list updates and waitpid, kill, pidfd_send_signal and a write to the
 * eventfd; every wake-up (may_event_fire), every may_fd_* call (which take
 * io.c's per-fd locks, also OBJECT) and pthread_create happen outside.
 *
 * Memory ordering: every field shared between threads (reaped, status,
 * refs, orphan, the lists, the reapers' state) is under proc_lock; pid,
 * pidfd and the pipe descriptors are written before the handle is
 * returned and never change.  proc_pidfd_ok is a relaxed cache of a probe
 * that any thread may repeat.
 *
 * Not supported: SIGCHLD set to SIG_IGN, or a waitpid(-1) elsewhere in the
 * program, reap our children behind our back; may_process_wait then says
 * -ECHILD.  The child of a fork(2) does not inherit the reaper threads.
 */
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/* The first version of may_process_opts_t ended with .flags. */
#define PROC_OPTS_V1_SIZE (offsetof(may_process_opts_t, flags) + sizeof(unsigned))
#define PROC_FLAGS (MAY_PROCESS_SETSID | MAY_PROCESS_NO_PIDFD)

struct may_process {
    pid_t pid;
    int pidfd;             /* the child's pidfd, or -1: SIGCHLD mode */
    int fd[3];             /* the parent's pipe ends (stdin, stdout, stderr), -1: none */
    may_event_t *exited;   /* SIGCHLD mode: fired by the reaper once reaped */
    /* under proc_lock */
    int reaped;            /* waitpid has returned its status (or ECHILD) */
    int status;            /* the wait status, once reaped */
    int lost;              /* reaped by someone else: waitpid said ECHILD */
    int refs;              /* SIGCHLD mode: owner (1) + reaper firing (1) */
    int orphan;            /* freed by its owner before it was reaped */
    struct may_process *next, *prev; /* SIGCHLD: the reaper's list; pidfd:
                                        the orphan list (once freed) */
};

static pthread_mutex_t proc_lock = PTHREAD_MUTEX_INITIALIZER;

/* pidfd orphans and their thread (under proc_lock). */
static struct {
    may_process_t *head;
    int n;
    int running; /* the orphan thread runs (or is being made) */
    int wakefd;  /* eventfd: a new orphan came; made once, kept */
} proc_orph = { NULL, 0, 0, -1 };

/* SIGCHLD mode: every process of that mode not yet reaped (under
 * proc_lock); the reaper thread and its watcher, made once. */
static struct {
    may_process_t *head;
    may_once_t once;
    int err; /* the reaper could not start: -errno (written in once) */
} proc_sc = { NULL, MAY_ONCE_INIT, 0 };

/* pidfd_open works here: 0 unknown, 1 yes, -1 no (relaxed: a cache). */
static _Atomic int proc_pidfd_ok;

/* ---- reaping ------------------------------------------------------------- */

static void proc_unlink(may_process_t **head, may_process_t *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        *head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
}

static void proc_push(may_process_t **head, may_process_t *p)
{
    p->prev = NULL;
    p->next = *head;
    if (*head)
        (*head)->prev = p;
    *head = p;
}

/* Reap p if it has exited.  1: reaped (now or before), 0: still running.
 * A process of SIGCHLD mode leaves the reaper's list when reaped. */
static int proc_try_reap_locked(may_process_t *p)
{
    MAY__ASSERT_HELD(MAY__RANK_OBJECT, &proc_lock);
    if (p->reaped)
        return 1;
    int st = 0;
    pid_t r;
    do
        r = waitpid(p->pid, &st, WNOHANG);
    while (r < 0 && may__errno_now() == EINTR);
    if (r == 0)
        return 0;
    p->reaped = 1;
    if (r == p->pid)
        p->status = st;
    else
        p->lost = 1; /* ECHILD: reaped behind our back */
    if (p->pidfd < 0)
        proc_unlink(&proc_sc.head, p);
    return 1;
}

static void proc_destroy(may_process_t *p)
{
    if (p->exited)
        may_event_free(p->exited);
    free(p);
}

/* Block every signal in a helper thread: the program's signals are for
 * its own threads. */
static int proc_thread_start(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    int e = pthread_attr_init(&attr);
    if (e)
        return -e;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    e = pthread_create(&t, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return -e;
}

/* The orphan thread (pidfd mode): reap orphans as they exit, end when none
 * is left. */
static void *proc_orphan_main(void *arg)
{
    (void)arg;
    struct pollfd *pfd = NULL;
    int cap = 0;
    for (;;) {
        may_process_t *done = NULL;
        may__lock(&proc_lock, MAY__RANK_OBJECT);
        for (may_process_t *p = proc_orph.head, *next; p; p = next) {
            next = p->next;
            if (proc_try_reap_locked(p)) {
                proc_unlink(&proc_orph.head, p);
                proc_orph.n--;
                p->next = done;
                done = p;
            }
        }
        int n = proc_orph.n;
        if (n == 0)
            proc_orph.running = 0;
        if (n > 0 && n + 1 > cap) {
            struct pollfd *np = realloc(pfd, (size_t)(n + 1) * 2 * sizeof *pfd);
            if (np) {
                pfd = np;
                cap = (n + 1) * 2;
            }
        }
        int m = 0;
        if (n > 0 && n + 1 <= cap) {
            pfd[m++] = (struct pollfd){ .fd = proc_orph.wakefd, .events = POLLIN };
            for (may_process_t *p = proc_orph.head; p; p = p->next)
                pfd[m++] = (struct pollfd){ .fd = p->pidfd, .events = POLLIN };
        }
        may__unlock(&proc_lock, MAY__RANK_OBJECT);
        for (may_process_t *p = done, *next; p; p = next) {
            next = p->next;
            close(p->pidfd); /* forgotten by the reactor when orphaned */
            proc_destroy(p);
        }
        if (n == 0)
            break;
        if (m == 0) { /* no memory for the poll set: look again later */
            usleep(10000);
            continue;
        }
        if (poll(pfd, (nfds_t)m, -1) > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;
            (void)!read(proc_orph.wakefd, &v, sizeof v);
        }
    }
    free(pfd);
    return NULL;
}

/* Hand a running pidfd-mode process to the orphan thread. */
static void proc_orphan_add(may_process_t *p)
{
    may_fd_forget(p->pidfd); /* the orphan thread polls it itself */
    int start = 0, poke = 0;
    may__lock(&proc_lock, MAY__RANK_OBJECT);
    if (proc_orph.wakefd < 0)
        proc_orph.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    p->orphan = 1;
    proc_push(&proc_orph.head, p);
    proc_orph.n++;
    if (!proc_orph.running)
        proc_orph.running = start = 1;
    else
        poke = 1;
    if (poke && proc_orph.wakefd >= 0) {
        uint64_t one = 1;
        (void)!write(proc_orph.wakefd, &one, sizeof one);
    }
    may__unlock(&proc_lock, MAY__RANK_OBJECT);
    if (start && (proc_orph.wakefd < 0 || proc_thread_start(proc_orphan_main, NULL) < 0)) {
        /* No thread: the orphans wait for the next may_process_free that
         * manages to start one (docs/PROCESS.md, "Limits"). */
        may__lock(&proc_lock, MAY__RANK_OBJECT);
        proc_orph.running = 0;
        may__unlock(&proc_lock, MAY__RANK_OBJECT);
    }
}

/* ---- SIGCHLD mode -------------------------------------------------------- */

/* Reap every exited process of SIGCHLD mode; fire the events of those that
 * have an owner, free the orphans. */
static void proc_sigchld_scan(void)
{
    may_process_t *fire = NULL, *drop = NULL;
    may__lock(&proc_lock, MAY__RANK_OBJECT);
    for (may_process_t *p = proc_sc.head, *next; p; p = next) {
        next = p->next;
        if (!proc_try_reap_locked(p)) /* unlinks it when reaped */
            continue;
        if (p->orphan) {
            p->next = drop;
            drop = p;
        } else {
            p->refs++; /* ours while we fire */
            p->next = fire;
            fire = p;
        }
    }
    may__unlock(&proc_lock, MAY__RANK_OBJECT);
    for (may_process_t *p = fire, *next; p; p = next) {
        next = p->next;
        may_event_fire(p->exited);
        may__lock(&proc_lock, MAY__RANK_OBJECT);
        int last = --p->refs == 0;
        may__unlock(&proc_lock, MAY__RANK_OBJECT);
        if (last)
            proc_destroy(p);
    }
    for (may_process_t *p = drop, *next; p; p = next) {
        next = p->next;
        proc_destroy(p);
    }
}

/* The reaper also scans this often without a SIGCHLD: a safety net for one
 * that never reaches its watcher.  The program may have changed SIGCHLD's
 * disposition behind the watcher's back; and under TSan, which runs a
 * signal handler only at the receiving thread's next intercepted call, a
 * SIGCHLD taken by a thread asleep in a raw futex (a parked plain thread,
 * an idle worker) waits for as long as that thread sleeps. */
#ifdef MAY_TSAN
#define PROC_RESCAN_NS 10000000LL /* 10 ms */
#else
#define PROC_RESCAN_NS 1000000000LL /* 1 s */
#endif

static void *proc_sigchld_main(void *arg)
{
    may_signal_t *w = arg;
    for (;;) {
        /* Scan first: a child may have exited before the watcher was in
         * place (see the essay). */
        proc_sigchld_scan();
        may_signal_wait(w, may_deadline_in(PROC_RESCAN_NS));
    }
    return NULL;
}

static void proc_sigchld_start(void *arg)
{
    (void)arg;
    may_signal_t *w;
    int r = may_signal_new(&w, (int[]){ SIGCHLD }, 1, 0);
    if (r == 0) {
        r = proc_thread_start(proc_sigchld_main, w);
        if (r < 0)
            may_signal_free(w);
    }
    proc_sc.err = r;
}

/* ---- spawning ------------------------------------------------------------ */

/* Whether pidfd_open works here (probed once, on ourselves). */
static int proc_pidfd_usable(void)
{
    int ok = atomic_load_explicit(&proc_pidfd_ok, memory_order_relaxed);
    if (ok == 0) {
        const char *e = getenv("MAY_NO_PIDFD");
        ok = -1;
        if (!(e && e[0] == '1')) {
            int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
            if (fd >= 0) {
                close(fd);
                ok = 1;
            } else if (may__errno_now() != ENOSYS && may__errno_now() != EINVAL &&
                       may__errno_now() != EPERM) {
                ok = 1; /* EMFILE and the like: it exists */
            }
        }
        atomic_store_explicit(&proc_pidfd_ok, ok, memory_order_relaxed);
    }
    return ok > 0;
}

/* 0 when path names an executable regular file, else -errno. */
static int proc_check_exec(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -may__errno_now();
    if (!S_ISREG(st.st_mode))
        return -EACCES; /* what execve says of a directory */
    if (faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) < 0)
        return -may__errno_now();
    return 0;
}

/* Join dir and name into out (PATH_MAX bytes): 0 or -ENAMETOOLONG. */
static int proc_join(char *out, const char *dir, size_t dlen, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%.*s%s%s", (int)dlen, dir, dlen ? "/" : "", name);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Find file as execvp would, in the parent's $PATH: 0 with out set (the
 * name as posix_spawn should exec it), -ENOENT, -EACCES, -ENAMETOOLONG. */
static int proc_lookup(const char *file, const char *cwd, char *out)
{
    if (!*file)
        return -ENOENT;
    if (strchr(file, '/')) {
        /* the child execs it after its chdir: check it there */
        char *chk = out;
        if (file[0] != '/' && cwd && proc_join(out, cwd, strlen(cwd), file) < 0)
            return -ENAMETOOLONG;
        if (file[0] == '/' || !cwd)
            chk = (char *)file;
        int r = proc_check_exec(chk);
        if (r < 0)
            return r;
        if (strlen(file) >= PATH_MAX)
            return -ENAMETOOLONG;
        strcpy(out, file);
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    int err = -ENOENT;
    for (const char *s = path;; s++) {
        const char *e = strchr(s, ':');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        /* an empty entry is the current directory, as for execvp */
        if (proc_join(out, len ? s : ".", len ? len : 1, file) == 0) {
            int r = proc_check_exec(out);
            if (r == 0 && out[0] != '/' && cwd) {
                /* a relative $PATH entry names the parent's directory, and
                 * the child execs after its chdir */
                char *abs = realpath(out, NULL);
                if (!abs || strlen(abs) >= PATH_MAX)
                    r = abs ? -ENAMETOOLONG : -may__errno_now();
                else
                    strcpy(out, abs);
                free(abs);
            }
            if (r == 0)
                return 0;
            if (r == -EACCES)
                err = -EACCES;
        }
        if (!e)
            break;
        s = e;
    }
    return err;
}

/* 0 when dir is a directory we may enter, else -errno. */
static int proc_check_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0)
        return -may__errno_now();
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (faccessat(AT_FDCWD, dir, X_OK, AT_EACCESS) < 0)
        return -may__errno_now();
    return 0;
}

/* fd itself if it is above 2, else a close-on-exec copy above 2 (*tmp set
 * to it, for the caller to close).  -errno on failure. */
static int proc_above2(int fd, int *tmp)
{
    if (fd > 2)
        return fd;
    int c = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (c < 0)
        return -may__errno_now();
    *tmp = c;
    return c;
}

static void proc_close_quiet(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
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
        int r = may__abi_in(&o, sizeof o, uopts, opts_size, PROC_OPTS_V1_SIZE);
        if (r < 0)
            return r;
    }
    if (o.flags & ~PROC_FLAGS)
        return -EINVAL;
    for (int i = 0; i < 3; i++) {
        if (o.stdio[i] < MAY_STDIO_INHERIT || o.stdio[i] > MAY_STDIO_FD)
            return -EINVAL;
        if (o.stdio[i] == MAY_STDIO_FD && o.fd[i] < 0)
            return -EBADF;
    }
#if !__GLIBC_PREREQ(2, 29)
    if (o.cwd)
        return -ENOTSUP; /* no posix_spawn_file_actions_addchdir_np */
#endif
#ifndef POSIX_SPAWN_SETSID
    if (o.flags & MAY_PROCESS_SETSID)
        return -ENOTSUP;
#endif
    if (o.cwd) {
        int r = proc_check_dir(o.cwd);
        if (r < 0)
            return r;
    }
    int use_pidfd = !(o.flags & MAY_PROCESS_NO_PIDFD) && proc_pidfd_usable();

    may_process_t *p = calloc(1, sizeof *p);
    char *path = malloc(PATH_MAX);
    int r = -ENOMEM;
    if (!p || !path)
        goto out_free;
    p->pidfd = -1;
    p->refs = 1;
    p->fd[0] = p->fd[1] = p->fd[2] = -1;
    r = proc_lookup(file, o.cwd, path);
    if (r < 0)
        goto out_free;
    if (!use_pidfd) {
        may_once(&proc_sc.once, proc_sigchld_start, NULL);
        if ((r = proc_sc.err) < 0)
            goto out_free;
        if ((r = may_event_new(&p->exited)) < 0)
            goto out_free;
    }

    /* The child's stdio sources, all above 2; child[i] and tmp[i] are
     * closed in the parent after the spawn. */
    int src[3] = { -1, -1, -1 }, child[3] = { -1, -1, -1 }, tmp[3] = { -1, -1, -1 };
    for (int i = 0; i < 3; i++) {
        if (o.stdio[i] == MAY_STDIO_PIPE) {
            int pp[2];
            if (pipe2(pp, O_CLOEXEC) < 0) {
                r = -may__errno_now();
                goto out_close;
            }
            p->fd[i] = pp[i == 0 ? 1 : 0];
            child[i] = pp[i == 0 ? 0 : 1];
            /* the parent's end only: the child gets a blocking pipe */
            int fl = fcntl(p->fd[i], F_GETFL);
            if (fl < 0 || fcntl(p->fd[i], F_SETFL, fl | O_NONBLOCK) < 0) {
                r = -may__errno_now();
                goto out_close;
            }
            if ((src[i] = proc_above2(child[i], &tmp[i])) < 0) {
                r = src[i];
                goto out_close;
            }
        } else if (o.stdio[i] == MAY_STDIO_FD) {
            if ((src[i] = proc_above2(o.fd[i], &tmp[i])) < 0) {
                r = src[i];
                goto out_close;
            }
        }
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    if ((r = posix_spawn_file_actions_init(&fa)) != 0) {
        r = -r;
        goto out_close;
    }
    if ((r = posix_spawnattr_init(&attr)) != 0) {
        r = -r;
        posix_spawn_file_actions_destroy(&fa);
        goto out_close;
    }
    int e = 0;
    for (int i = 0; i < 3 && !e; i++) {
        if (src[i] >= 0)
            e = posix_spawn_file_actions_adddup2(&fa, src[i], i);
        else if (o.stdio[i] == MAY_STDIO_NULL)
            e = posix_spawn_file_actions_addopen(&fa, i, "/dev/null",
                                                 i == 0 ? O_RDONLY : O_WRONLY, 0);
    }
#if __GLIBC_PREREQ(2, 29)
    if (!e && o.cwd)
        e = posix_spawn_file_actions_addchdir_np(&fa, o.cwd);
#endif
#if __GLIBC_PREREQ(2, 34)
    if (!e)
        e = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    short sf = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
#ifdef POSIX_SPAWN_SETSID
    if (o.flags & MAY_PROCESS_SETSID)
        sf |= POSIX_SPAWN_SETSID;
#endif
    if (!e)
        e = posix_spawnattr_setsigmask(&attr, &none);
    if (!e)
        e = posix_spawnattr_setsigdefault(&attr, &all);
    if (!e)
        e = posix_spawnattr_setflags(&attr, sf);
    if (!e) {
        char *const *envp = o.env ? (char *const *)o.env : environ;
        may_blocking_begin(); /* suspended until the child has exec'd */
        e = posix_spawn(&p->pid, path, &fa, &attr, (char *const *)argv, envp);
        may_blocking_end();
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (e) {
        r = -e;
        goto out_close;
    }
    for (int i = 0; i < 3; i++) {
        proc_close_quiet(&child[i]);
        proc_close_quiet(&tmp[i]);
    }

    if (use_pidfd) {
        p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
        if (p->pidfd < 0) {
            /* EMFILE, ENOMEM: a child we cannot watch is no use */
            r = -may__errno_now();
            kill(p->pid, SIGKILL);
            may_blocking_begin();
            while (waitpid(p->pid, NULL, 0) < 0 && may__errno_now() == EINTR)
                ;
            may_blocking_end();
            goto out_pipes;
        }
    } else {
        may__lock(&proc_lock, MAY__RANK_OBJECT);
        proc_push(&proc_sc.head, p);
        proc_try_reap_locked(p); /* it may have exited before it was listed */
        may__unlock(&proc_lock, MAY__RANK_OBJECT);
    }
    free(path);
    *out = p;
    return 0;

out_close:
    for (int i = 0; i < 3; i++) {
        proc_close_quiet(&child[i]);
        proc_close_quiet(&tmp[i]);
    }
out_pipes:
    for (int i = 0; i < 3; i++)
        proc_close_quiet(&p->fd[i]);
out_free:
    free(path);
    if (p)
        proc_destroy(p);
    return r;
}

/* ---- the handle ---------------------------------------------------------- */

pid_t may_process_pid(const may_process_t *p)
{
    return p ? p->pid : -1;
}

#include "process_stdio.h" /* may_process_stdio, _take_stdio, _close_stdio */

int may_process_wait(may_process_t *p, int *status, int64_t deadline)
{
    if (!p)
        return -EINVAL;
    for (;;) {
        may__lock(&proc_lock, MAY__RANK_OBJECT);
        int done = proc_try_reap_locked(p), st = p->status, lost = p->lost;
        may__unlock(&proc_lock, MAY__RANK_OBJECT);
        if (done) {
            if (lost)
                return -ECHILD;
            if (status)
                *status = st;
            return 0;
        }
        /* Not yet: wait for the exit (a pidfd polls readable; the reaper
         * fires the event), then reap.  Both return at once when the exit
         * came meanwhile. */
        int r = p->pidfd >= 0 ? may_fd_wait(p->pidfd, MAY_READ, deadline)
                              : may_event_wait(p->exited, deadline);
        if (r < 0)
            return r;
    }
}

int may_process_kill(may_process_t *p, int sig)
{
    if (!p)
        return -EINVAL;
    int r;
    may__lock(&proc_lock, MAY__RANK_OBJECT);
    if (p->reaped)
        r = -ESRCH; /* its pid may be someone else's by now */
    else if (p->pidfd >= 0)
        r = syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) == 0 ? 0 : -may__errno_now();
    else
        r = kill(p->pid, sig) == 0 ? 0 : -may__errno_now();
    may__unlock(&proc_lock, MAY__RANK_OBJECT);
    return r;
}

void may_process_free(may_process_t *p)
{
    if (!p)
        return;
    for (int i = 0; i < 3; i++)
        if (p->fd[i] >= 0)
            may_fd_close(p->fd[i]);
    may__lock(&proc_lock, MAY__RANK_OBJECT);
    int reaped = proc_try_reap_locked(p), last = 0;
    if (p->pidfd < 0) {
        if (reaped)
            last = --p->refs == 0; /* the reaper may be firing its event */
        else
            p->orphan = 1; /* stays listed: the reaper frees it */
    }
    int pidfd = p->pidfd; /* an orphan of SIGCHLD mode may be gone after the unlock */
    may__unlock(&proc_lock, MAY__RANK_OBJECT);
    if (pidfd >= 0) {
        if (!reaped) {
            proc_orphan_add(p);
            return;
        }
        may_fd_close(pidfd);
        proc_destroy(p);
    } else if (last) {
        proc_destroy(p);
    }
}
