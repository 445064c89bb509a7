/* Idle workers pre-populate fresh stacks.  A spawn into a fresh slab slot
 * writes its control block into a page never touched: a page fault on the
 * spawning thread, unless a worker that was spinning for work populated
 * that page ahead (may__stack_prewarm, MADV_POPULATE_WRITE).  Here a plain
 * thread spawns into fresh dense slots after the workers have had idle
 * spins to prepare them, and its own minor page faults are counted
 * (getrusage RUSAGE_THREAD): without prewarming each spawn costs one.
 * Skipped where MADV_POPULATE_WRITE does not populate (kernels before 5.14,
 * qemu-user, which accepts and ignores it); under ASan, TSan and valgrind
 * the count is only printed, as their shadow memory faults on the same
 * thread.
 *
 * The second round checks the slab mapped ahead: after the first round the
 * global pool holds less than a slab, so an idle worker maps the next slab
 * and warms it during the idle spins that follow.  Without that, the
 * spawner maps it when the pool runs dry, and the second round's spawns
 * past the slots left fault once each (unless the workers, woken by those
 * spawns, happen to warm some of them first). */
#include "test.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SHADOW_FAULTS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SHADOW_FAULTS 1
#endif
#endif
#ifndef SHADOW_FAULTS
#define SHADOW_FAULTS 0
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define K 128  /* parked coroutines spawned into fresh slots, round one */
#define K2 256 /* round two: more than the 127 fresh slots left in the slab */

static _Atomic int release;

static void *parked(void *arg)
{
    (void)arg;
    while (!atomic_load(&release))
        may_sleep(TEST_MS(1));
    return NULL;
}

static void *nothing(void *arg)
{
    return arg;
}

static long thread_minflt(void)
{
    struct rusage ru;
    ASSERT_EQ(getrusage(RUSAGE_THREAD, &ru), 0);
    return ru.ru_minflt;
}

/* Does MADV_POPULATE_WRITE make a fresh page resident here? */
static bool populate_works(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    unsigned char *p = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    ASSERT(p != MAP_FAILED);
    unsigned char vec = 0;
    bool ok = madvise(p, (size_t)pg, MADV_POPULATE_WRITE) == 0 && mincore(p, (size_t)pg, &vec) == 0 &&
              (vec & 1);
    munmap(p, (size_t)pg);
    return ok;
}

/* Short bursts of work from this plain thread, each followed by a pause in
 * which the workers spin for work, then sleep. */
static void idle_bursts(int n)
{
    for (int i = 0; i < n; i++) {
        may_co_t *co;
        ASSERT_EQ(may_spawn(&co, nothing, NULL, NULL), 0);
        ASSERT_EQ(may_join(co, NULL, MAY_FOREVER), MAY_DONE);
        usleep(2000);
    }
}

/* Spawn n parked coroutines; the page faults this thread took meanwhile. */
static long spawn_parked(may_co_t **cos, int n)
{
    long f0 = thread_minflt();
    for (int i = 0; i < n; i++)
        ASSERT_EQ(may_spawn(&cos[i], parked, NULL, NULL), 0);
    return thread_minflt() - f0;
}

static void check_faults(long faults, long limit)
{
    if (SHADOW_FAULTS || RUNNING_ON_VALGRIND)
        printf("note: shadow memory faults too under this tool; not checked\n");
    else
        ASSERT_LT(faults, limit);
}

int main(void)
{
    if (!populate_works()) {
        printf("skipped: MADV_POPULATE_WRITE does not populate here\n");
        return 0;
    }
    may_config_t cfg = { .workers = 2, .stack_mode = MAY_STACK_DENSE };
    ASSERT_EQ(may_configure(&cfg), 0);
    /* One spawn maps a slab of fresh slots; short bursts of work then give
     * the workers idle spins, in which they populate the slots next in line. */
    idle_bursts(40);
    static may_co_t *cos[K + K2];
    long faults = spawn_parked(cos, K);
    printf("%d spawns into fresh slots: %ld page faults on the spawning thread\n", K, faults);
    /* without prewarming: at least one each (the control block's page) */
    check_faults(faults, K / 2);
    idle_bursts(80); /* the rest of the first slab and the second, 383 slots */
    faults = spawn_parked(cos + K, K2);
    printf("%d more spawns, past the first slab: %ld page faults on the spawning thread\n", K2,
           faults);
    /* without the slab mapped ahead: 128 here, or 50-100 when the workers
     * warm the spawner's new slab while it spawns; with it: 0 */
    check_faults(faults, K2 / 8);
    atomic_store(&release, 1);
    for (int i = 0; i < K + K2; i++)
        ASSERT_EQ(may_join(cos[i], NULL, MAY_FOREVER), MAY_DONE);
    ASSERT_EQ(may_shutdown(), 0);
    printf("ok\n");
    return 0;
}
