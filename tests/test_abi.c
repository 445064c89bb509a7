/* The growable public structs across versions (include/may.h, "Options
 * structs"): may_configure, may_spawn, may_scope_spawn and may_stats pass
 * the caller's sizeof to a _sized entry point.
 *
 * - A program built against an older header passes a smaller struct: the
 *   library reads and writes only that many bytes.  The struct is placed
 *   so that it ends where an inaccessible page starts, so a library that
 *   copied its own, larger size would fault here.
 * - One built against a newer header passes a larger struct: fields the
 *   library does not know are accepted while zero and refused with -E2BIG
 *   when set; may_stats zeroes them.
 * - A size below the first version's is -EINVAL. */
#include "test.h"

#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

/* Two pages, the second inaccessible: a pointer to n bytes that end at the
 * boundary. */
static void *at_page_end(size_t n, char **map_out)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    ASSERT(m != MAP_FAILED);
    ASSERT_EQ(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
    *map_out = m;
    return m + pg - n;
}

static void unmap(char *m)
{
    munmap(m, 2 * (size_t)sysconf(_SC_PAGESIZE));
}

/* The first version of each struct ends with these fields. */
#define CONFIG_V1 (offsetof(may_config_t, track_stack) + sizeof(bool))
#define OPTS_V1 (offsetof(may_spawn_opts_t, flags) + sizeof(unsigned))
#define STATS_V1 (offsetof(may_stats_t, fd_waiters) + sizeof(uint64_t))

static void *ret_arg(void *arg)
{
    return arg;
}

static void test_config(void)
{
    char *m;
    /* older and smaller: the first version's bytes only (it is shorter than
     * sizeof by the tail padding) */
    char *at = at_page_end(CONFIG_V1, &m);
    may_config_t v1 = { .workers = 3, .stack_size = 128 * 1024 };
    memcpy(at, &v1, CONFIG_V1); /* not aligned: filled bytewise */
    const may_config_t *c = (const void *)at;
    ASSERT_EQ(may_configure_sized(c, CONFIG_V1), 0);
    ASSERT_EQ(may_configure_sized(c, CONFIG_V1 - 1), -EINVAL);
    ASSERT_EQ(may_configure_sized(NULL, sizeof(may_config_t)), -EINVAL);
    unmap(m);

    /* newer and larger: an unknown field left zero is fine, set is not */
    struct {
        may_config_t c;
        uint64_t future;
    } big = { .c = { .workers = 2 } };
    ASSERT_EQ(may_configure_sized(&big.c, sizeof big), 0);
    big.future = 1;
    ASSERT_EQ(may_configure_sized(&big.c, sizeof big), -E2BIG);
    /* and bad values are still checked in every form */
    big.future = 0;
    big.c.workers = -1;
    ASSERT_EQ(may_configure_sized(&big.c, sizeof big), -EINVAL);
    /* the macro passes this header's size */
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2, .stack_size = 96 * 1024 }), 0);
    ASSERT_EQ(may_workers(), 2);
}

static void test_spawn_opts(void)
{
    char *m;
    may_spawn_opts_t *o = at_page_end(OPTS_V1, &m);
    memset(o, 0, OPTS_V1);
    o->name = "old-opts";
    may_co_t *co;
    void *res = NULL;
    ASSERT_EQ(may_spawn_sized(&co, ret_arg, (void *)7, o, OPTS_V1), 0);
    ASSERT_EQ(may_join(co, &res, MAY_FOREVER), MAY_DONE);
    ASSERT_PTR_EQ(res, 7);
    ASSERT_EQ(may_spawn_sized(&co, ret_arg, NULL, o, OPTS_V1 - 1), -EINVAL);

    may_scope_t *s;
    ASSERT_EQ(may_scope_new(&s), 0);
    ASSERT_EQ(may_scope_spawn_sized(s, ret_arg, NULL, o, OPTS_V1), 0);
    ASSERT_EQ(may_scope_spawn_sized(s, ret_arg, NULL, o, 3), -EINVAL);
    unmap(m);

    struct {
        may_spawn_opts_t o;
        uint64_t future;
    } big = { .o = { .name = "new-opts" }, .future = 0 };
    ASSERT_EQ(may_spawn_sized(&co, ret_arg, (void *)9, &big.o, sizeof big), 0);
    ASSERT_EQ(may_join(co, &res, MAY_FOREVER), MAY_DONE);
    ASSERT_PTR_EQ(res, 9);
    ASSERT_EQ(may_scope_spawn_sized(s, ret_arg, NULL, &big.o, sizeof big), 0);
    big.future = 42;
    ASSERT_EQ(may_spawn_sized(&co, ret_arg, NULL, &big.o, sizeof big), -E2BIG);
    ASSERT_EQ(may_scope_spawn_sized(s, ret_arg, NULL, &big.o, sizeof big), -E2BIG);
    ASSERT_EQ(may_scope_wait(s, MAY_FOREVER), 0);
    may_scope_free(s);
    /* NULL options need no size */
    ASSERT_EQ(may_spawn_sized(&co, ret_arg, NULL, NULL, 0), 0);
    ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);
}

static void test_stats(void)
{
    char *m;
    may_stats_t *st = at_page_end(STATS_V1, &m);
    memset(st, 0xAA, STATS_V1);
    ASSERT_EQ(may_stats_sized(st, STATS_V1), 0);
    ASSERT_EQ(st->workers, 2);
    ASSERT_EQ(st->alive, 0);
    ASSERT_GE(st->spawned, 3);
    ASSERT_EQ(may_stats_sized(st, STATS_V1 - 8), -EINVAL);
    ASSERT_EQ(may_stats_sized(NULL, sizeof(may_stats_t)), -EINVAL);
    unmap(m);

    struct {
        may_stats_t s;
        uint64_t future[4];
        uint64_t canary;
    } big;
    memset(&big, 0xAA, sizeof big);
    ASSERT_EQ(may_stats_sized(&big.s, offsetof(__typeof__(big), canary)), 0);
    ASSERT_EQ(big.s.workers, 2);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(big.future[i], 0);
    ASSERT_EQ(big.canary, 0xAAAAAAAAAAAAAAAAull);
    may_stats_t now;
    ASSERT_EQ(may_stats(&now), 0);
    ASSERT_EQ(now.workers, 2);
}

int main(void)
{
    test_config();
    test_spawn_opts();
    test_stats();
    printf("test_abi: ok\n");
    return 0;
}
