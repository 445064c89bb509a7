/* A consumer of an installed libmay_hook: on one worker, without the
 * hand-off, one coroutine blocks in a plain read(2) of a blocking pipe and
 * another writes to it after a may_sleep.  With the hooks the read parks
 * and both finish; without them the read would hold the only worker and
 * the writer never run (alarm(5) ends that). */
#include <may.h>
#include <stdio.h>
#include <unistd.h>

static int fds[2];

static void *reader(void *arg)
{
    (void)arg;
    char c = 0;
    return read(fds[0], &c, 1) == 1 && c == 'x' ? (void *)1 : NULL;
}

static void *writer(void *arg)
{
    (void)arg;
    may_sleep(20 * 1000000LL);
    return write(fds[1], "x", 1) == 1 ? (void *)1 : NULL;
}

int main(void)
{
    alarm(5);
    if (pipe(fds) != 0 || may_configure(&(may_config_t){ .workers = 1, .no_handoff = true }) != 0)
        return 1;
    may_co_t *r, *w;
    void *rr = NULL, *wr = NULL;
    if (may_spawn(&r, reader, NULL, NULL) || may_spawn(&w, writer, NULL, NULL))
        return 1;
    if (may_join(r, &rr, MAY_FOREVER) != MAY_DONE || may_join(w, &wr, MAY_FOREVER) != MAY_DONE ||
        !rr || !wr) {
        fprintf(stderr, "hook consumer: the read or the write failed\n");
        return 1;
    }
    puts("hook consumer: ok");
    return 0;
}
