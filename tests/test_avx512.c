/* AVX-512 state across context switches.  tests/CMakeLists.txt compiles
 * this file with -mavx512f where the compiler has it, as the library is
 * compiled with -march=native on a machine with AVX-512; it skips (and
 * passes) where the CPU lacks AVX-512F, and where it was built without.
 *
 * 1. The switch itself.  Two contexts hand the thread to each other with
 *    may__ctx_jump, the scheduler's inline switch (src/arch/x86_64/jump.h),
 *    here compiled with AVX-512 as it is in such a library.  Each keeps 16
 *    vectors and 4 mask registers live across every switch.  The switch
 *    always declares xmm0-15 clobbered, so a compiler keeps such values in
 *    zmm16-31 and k1-k7 unless the switch declares those clobbered too;
 *    and between switches each side overwrites zmm16-31 and k0-k7 with its
 *    own values, so neither finds its own there after a switch.
 * 2. Coroutines.  Pairs of coroutines that compute with AVX-512 hand the
 *    worker to each other with may_yield and pass vectors over a channel,
 *    with values live across every call, pinned to one worker and free to
 *    move.  (A call into the library is one the compiler already keeps
 *    nothing across in a vector register, so this part holds the library
 *    to the ABI rather than testing the clobber list.) */
#include "test.h"

#if defined(__x86_64__) && defined(__AVX512F__)
#include "../src/internal.h"

#include <immintrin.h>
#include <sys/mman.h>

/* ---- 1. the switch -------------------------------------------------------- */

typedef struct side {
    may__ctx ctx;
    struct side *other;
    volatile int seed; /* read afresh after each switch: nothing to fold */
    long rounds;
    long bad;
} side;

static may__ctx main_ctx;
static side sides[2];

/* Overwrite zmm16-31 and k0-k7 (declared clobbered: the compiler keeps
 * nothing of its own there across this). */
static inline void scribble(int x)
{
    __asm__ volatile("vpbroadcastd %0, %%zmm16\n\t"
                     "vmovdqa64 %%zmm16, %%zmm17\n\t"
                     "vmovdqa64 %%zmm16, %%zmm18\n\t"
                     "vmovdqa64 %%zmm16, %%zmm19\n\t"
                     "vmovdqa64 %%zmm16, %%zmm20\n\t"
                     "vmovdqa64 %%zmm16, %%zmm21\n\t"
                     "vmovdqa64 %%zmm16, %%zmm22\n\t"
                     "vmovdqa64 %%zmm16, %%zmm23\n\t"
                     "vmovdqa64 %%zmm16, %%zmm24\n\t"
                     "vmovdqa64 %%zmm16, %%zmm25\n\t"
                     "vmovdqa64 %%zmm16, %%zmm26\n\t"
                     "vmovdqa64 %%zmm16, %%zmm27\n\t"
                     "vmovdqa64 %%zmm16, %%zmm28\n\t"
                     "vmovdqa64 %%zmm16, %%zmm29\n\t"
                     "vmovdqa64 %%zmm16, %%zmm30\n\t"
                     "vmovdqa64 %%zmm16, %%zmm31\n\t"
                     "kmovw %0, %%k0\n\t"
                     "kmovw %0, %%k1\n\t"
                     "kmovw %0, %%k2\n\t"
                     "kmovw %0, %%k3\n\t"
                     "kmovw %0, %%k4\n\t"
                     "kmovw %0, %%k5\n\t"
                     "kmovw %0, %%k6\n\t"
                     "kmovw %0, %%k7"
                     :
                     : "r"(x)
                     : "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",
                       "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31",
                       "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7");
}

/* Lane l of vector i in round r of a side with seed s. */
#define LANES _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define VEC(s, r, i) _mm512_add_epi32(_mm512_set1_epi32((s) * 1000003 + (r) * 131 + (i) * 17), LANES)
#define MASK(s, r, j) ((__mmask16)((unsigned)((s) * 40503u + (unsigned)(r) * 2654435761u) >> (j * 4)))
/* v holds VEC(s, r, i): count one wrong lane or more as one error. */
#define CHECK_VEC(v, s, r, i) bad += _mm512_cmpneq_epi32_mask(v, VEC(s, r, i)) != 0
/* k holds MASK(s, r, j): select lanes with it and compare. */
#define CHECK_MASK(k, s, r, j)                                                                    \
    bad += _mm512_cmpeq_epi32_mask(_mm512_maskz_mov_epi32(k, _mm512_set1_epi32(1)),               \
                                   _mm512_set1_epi32(1)) != MASK(s, r, j)

__attribute__((noinline)) static void ping(void *arg)
{
    side *me = arg;
    long bad = 0;
    for (long r = 0; r < me->rounds; r++) {
        int s = me->seed;
        __m512i v0 = VEC(s, r, 0), v1 = VEC(s, r, 1), v2 = VEC(s, r, 2), v3 = VEC(s, r, 3);
        __m512i v4 = VEC(s, r, 4), v5 = VEC(s, r, 5), v6 = VEC(s, r, 6), v7 = VEC(s, r, 7);
        __m512i v8 = VEC(s, r, 8), v9 = VEC(s, r, 9), v10 = VEC(s, r, 10), v11 = VEC(s, r, 11);
        __m512i v12 = VEC(s, r, 12), v13 = VEC(s, r, 13), v14 = VEC(s, r, 14);
        __m512i v15 = VEC(s, r, 15);
        __mmask16 k0 = _cvtu32_mask16(MASK(s, r, 0)), k1 = _cvtu32_mask16(MASK(s, r, 1));
        __mmask16 k2 = _cvtu32_mask16(MASK(s, r, 2)), k3 = _cvtu32_mask16(MASK(s, r, 3));
        /* In registers now, and not to be recomputed after the switch (a
         * compiler would rather sink the arithmetic past it). */
        __asm__ volatile("" : "+v"(v0), "+v"(v1), "+v"(v2), "+v"(v3), "+v"(v4), "+v"(v5),
                              "+v"(v6), "+v"(v7));
        __asm__ volatile("" : "+v"(v8), "+v"(v9), "+v"(v10), "+v"(v11), "+v"(v12), "+v"(v13),
                              "+v"(v14), "+v"(v15));
        __asm__ volatile("" : "+k"(k0), "+k"(k1), "+k"(k2), "+k"(k3));
        may__ctx_jump(&me->ctx, &me->other->ctx, NULL); /* the other side runs */
        s = me->seed;
        CHECK_VEC(v0, s, r, 0);
        CHECK_VEC(v1, s, r, 1);
        CHECK_VEC(v2, s, r, 2);
        CHECK_VEC(v3, s, r, 3);
        CHECK_VEC(v4, s, r, 4);
        CHECK_VEC(v5, s, r, 5);
        CHECK_VEC(v6, s, r, 6);
        CHECK_VEC(v7, s, r, 7);
        CHECK_VEC(v8, s, r, 8);
        CHECK_VEC(v9, s, r, 9);
        CHECK_VEC(v10, s, r, 10);
        CHECK_VEC(v11, s, r, 11);
        CHECK_VEC(v12, s, r, 12);
        CHECK_VEC(v13, s, r, 13);
        CHECK_VEC(v14, s, r, 14);
        CHECK_VEC(v15, s, r, 15);
        CHECK_MASK(k0, s, r, 0);
        CHECK_MASK(k1, s, r, 1);
        CHECK_MASK(k2, s, r, 2);
        CHECK_MASK(k3, s, r, 3);
        scribble(s ^ (int)r); /* what the other side finds after its switch */
    }
    me->bad = bad;
    may__ctx_jump(&me->ctx, &main_ctx, NULL); /* done: never resumed */
}

static void check_switch(void)
{
#if defined(MAY_ASAN) || defined(MAY_TSAN)
    /* A switch the sanitizers are not told about confuses them, and the
     * calls that would tell them would keep nothing in a register anyway. */
    printf("switch: not checked under a sanitizer\n");
    return;
#endif
    enum { STACK = 256 * 1024 };
    long rounds = test_scale(100000);
    char *mem = mmap(NULL, 2 * STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT(mem != MAP_FAILED);
    for (int i = 0; i < 2; i++) {
        sides[i].other = &sides[1 - i];
        sides[i].seed = 7 + 1000 * i;
        sides[i].rounds = rounds;
        may__ctx_make(&sides[i].ctx, mem + (i + 1) * STACK, ping, &sides[i]);
    }
    /* Side 0 runs first, switches to side 1, and so on; side 0 ends first
     * and comes back here, then side 1 gets its last turn. */
    may__ctx_jump(&main_ctx, &sides[0].ctx, NULL);
    may__ctx_jump(&main_ctx, &sides[1].ctx, NULL);
    printf("switch: %ld rounds a side, %ld and %ld values lost\n", rounds, sides[0].bad,
           sides[1].bad);
    ASSERT_EQ(sides[0].bad, 0);
    ASSERT_EQ(sides[1].bad, 0);
    munmap(mem, 2 * STACK);
}

/* ---- 2. coroutines -------------------------------------------------------- */

typedef struct pair {
    may_chan_t *ch;
    long rounds;
    int seed;
    int sender;
} pair;

static _Atomic long co_bad;

static void *avx_co(void *arg)
{
    pair *p = arg;
    long bad = 0;
    int s = p->seed + p->sender;
    for (long r = 0; r < p->rounds; r++) {
        __m512i a = VEC(s, r, 0), b = VEC(s, r, 1), c = VEC(s, r, 2), d = VEC(s, r, 3);
        __mmask16 k = _cvtu32_mask16(MASK(s, r, 0));
        may_yield();
        __m512i x;
        if (p->sender) {
            x = _mm512_add_epi32(a, b);
            ASSERT_EQ(may_chan_send(p->ch, &x, MAY_FOREVER), 0);
        } else {
            ASSERT_EQ(may_chan_recv(p->ch, &x, MAY_FOREVER), 0);
            int t = p->seed + 1; /* the sender's */
            bad += _mm512_cmpneq_epi32_mask(x, _mm512_add_epi32(VEC(t, r, 0), VEC(t, r, 1))) != 0;
        }
        CHECK_VEC(a, s, r, 0);
        CHECK_VEC(b, s, r, 1);
        CHECK_VEC(c, s, r, 2);
        CHECK_VEC(d, s, r, 3);
        CHECK_MASK(k, s, r, 0);
    }
    atomic_fetch_add(&co_bad, bad);
    return NULL;
}

static void check_coroutines(void)
{
    enum { PAIRS = 4 };
    pair ps[2 * PAIRS];
    may_co_t *cos[2 * PAIRS];
    may_chan_t *chans[PAIRS];
    long rounds = test_scale(20000);
    for (int pinned = 1; pinned >= 0; pinned--) {
        may_spawn_opts_t opts = { .flags = pinned ? MAY_SPAWN_PINNED : 0, .worker = 0 };
        for (int i = 0; i < PAIRS; i++) {
            ASSERT_EQ(may_chan_make(&chans[i], __m512i, 0), 0);
            for (int j = 0; j < 2; j++) {
                ps[2 * i + j] = (pair){ chans[i], rounds, 100 * i, j };
                ASSERT_EQ(may_spawn(&cos[2 * i + j], avx_co, &ps[2 * i + j], &opts), 0);
            }
        }
        for (int i = 0; i < 2 * PAIRS; i++)
            ASSERT_EQ(may_join(cos[i], NULL, MAY_FOREVER), MAY_DONE);
        for (int i = 0; i < PAIRS; i++)
            may_chan_free(chans[i]);
    }
    printf("coroutines: %d pairs, %ld rounds each, %ld values lost\n", PAIRS, rounds,
           atomic_load(&co_bad));
    ASSERT_EQ(atomic_load(&co_bad), 0);
    ASSERT_EQ(may_shutdown(), 0);
}

__attribute__((noinline)) static void run(void)
{
    check_switch();
    check_coroutines();
    printf("ok\n");
}

int main(void)
{
    /* Nothing before this check may use AVX-512 (run is not inlined). */
    if (!__builtin_cpu_supports("avx512f")) {
        printf("skip: this CPU has no AVX-512F\n");
        return 0;
    }
    ASSERT_EQ(may_configure(&(may_config_t){ .workers = 2 }), 0);
    run();
    return 0;
}
#else
int main(void)
{
    printf("skip: built without AVX-512 (x86-64 with -mavx512f only)\n");
    return 0;
}
#endif
