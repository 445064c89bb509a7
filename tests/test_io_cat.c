/* The cat example (examples/cat.c) in-process: 1 MB through pipes (a
 * writer coroutine -> pipe -> cat_copy -> pipe -> a reader coroutine, the
 * output compared with the input), then a regular file as the input (the
 * poller refuses it; the reads just run) and a plain thread as the reader. */
#define CAT_NO_MAIN
#include "../examples/cat.c"
#include "test.h"

#include <fcntl.h>
#include <pthread.h>

/* On Windows, where only sockets have readiness, the pipes are loopback
 * TCP pairs (test.h). */
static void mkpipe(int p[2])
{
#ifdef _WIN32
    ASSERT_EQ(test_fd_pipe(p), 0);
#else
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
#endif
}

typedef struct feed {
    int fd;
    const unsigned char *data;
    size_t n;
} feed_t;

/* Write the data in uneven pieces, then close the write end. */
static void *writer_co(void *arg)
{
    feed_t *f = arg;
    size_t off = 0, piece = 1;
    while (off < f->n) {
        size_t k = f->n - off < piece ? f->n - off : piece;
        ssize_t w = may_write(f->fd, f->data + off, k, may_deadline_in(TEST_MS(10000)));
        ASSERT_GT(w, 0);
        off += (size_t)w;
        piece = piece * 3 % 70001 + 1;
    }
    ASSERT_EQ(may_fd_close(f->fd), 0);
    return NULL;
}

typedef struct sink {
    int fd;
    unsigned char *data;
    size_t cap, n;
    bool thread; /* a plain thread: may_read sleeps it instead of parking */
} sink_t;

static void *reader(void *arg)
{
    sink_t *s = arg;
    for (;;) {
        ASSERT_LT(s->n, s->cap + 1);
        size_t room = s->cap + 1 - s->n; /* +1: catch any extra byte */
        ssize_t r = may_read(s->fd, s->data + s->n, room < 4096 ? room : 4096,
                             may_deadline_in(TEST_MS(10000)));
        ASSERT_GE(r, 0);
        if (r == 0)
            break;
        s->n += (size_t)r;
    }
    ASSERT_EQ(may_fd_close(s->fd), 0);
    return NULL;
}

static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n);
    ASSERT(p != NULL);
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (unsigned char)(x >> 24);
    }
    return p;
}

/* cat from in_fd to a new pipe read by a coroutine or a thread; checks the
 * output equals want. */
static void run_cat(int in_fd, const unsigned char *want, size_t n, bool thread_reader)
{
    int out[2];
    mkpipe(out);
    sink_t sink = {out[0], malloc(n + 1), n, 0, thread_reader};
    ASSERT(sink.data != NULL);
    may_co_t *rd = NULL;
    pthread_t th;
    if (thread_reader)
        ASSERT_EQ(pthread_create(&th, NULL, reader, &sink), 0);
    else
        ASSERT_EQ(may_spawn(&rd, reader, &sink, NULL), 0);
    cat_job_t job = {in_fd, out[1], 0};
    may_co_t *co;
    ASSERT_EQ(may_spawn(&co, cat_co, &job, NULL), 0);
    ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(job.result, (long long)n);
    ASSERT_EQ(may_fd_close(out[1]), 0); /* the reader sees EOF */
    if (thread_reader)
        ASSERT_EQ(pthread_join(th, NULL), 0);
    else
        ASSERT_EQ(may_join(rd, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(sink.n, n);
    ASSERT(memcmp(sink.data, want, n) == 0);
    free(sink.data);
}

int main(void)
{
    /* 1 MB through pipes */
    size_t n = 1 << 20;
    unsigned char *data = pattern(n, 1);
    int in[2];
    mkpipe(in);
    feed_t feed = {in[1], data, n};
    may_co_t *wr;
    ASSERT_EQ(may_spawn(&wr, writer_co, &feed, NULL), 0);
    run_cat(in[0], data, n, false);
    ASSERT_EQ(may_join(wr, NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_fd_close(in[0]), 0);
    free(data);

    /* a regular file as stdin, a thread reading the output */
    n = 300000;
    data = pattern(n, 2);
#ifdef _WIN32 /* no /tmp; fds are handle values: the file through may_file_* */
    char path[MAX_PATH + 32];
    int fd = test_tmp_mkstemp(path, "may_test_cat_XXXXXX");
    ASSERT_EQ(close(fd), 0);
    fd = may_file_open(path, O_WRONLY | O_TRUNC, 0, MAY_FOREVER);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(may_file_write(fd, data, n, -1, MAY_FOREVER), (ssize_t)n);
    ASSERT_EQ(may_fd_close(fd), 0);
    fd = may_file_open(path, O_RDONLY, 0, MAY_FOREVER); /* at offset 0 */
    ASSERT_GE(fd, 0);
    run_cat(fd, data, n, true); /* may_read on a file: ReadFile on the offload pool */
    ASSERT_EQ(may_fd_close(fd), 0);
    ASSERT_EQ(unlink(path), 0);
#else
    char path[] = "/tmp/may_test_cat_XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(unlink(path), 0);
    ASSERT_EQ(write(fd, data, n), (ssize_t)n);
    ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
    run_cat(fd, data, n, true);
    ASSERT_EQ(may_fd_close(fd), 0);
#endif
    free(data);

    /* an empty input */
    mkpipe(in);
    ASSERT_EQ(test_fd_close(in[1]), 0); /* never registered: close(2) is fine */
    run_cat(in[0], (const unsigned char *)"", 0, false);
    ASSERT_EQ(may_fd_close(in[0]), 0);

    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
