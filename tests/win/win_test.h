/*
 * win_test.h - the checks of the Windows tests (tests/win/, run by
 * scripts/win-test.sh under wine): like tests/test.h, without the library.
 * A failed check prints both operands and exits with 1.
 */
#ifndef MAY_WIN_TEST_H
#define MAY_WIN_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define WCHECK(c)                                                                          \
    do {                                                                                   \
        if (!(c)) {                                                                        \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c);          \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

#define WCHECK_EQ(a, b)                                                                    \
    do {                                                                                   \
        uint64_t wa_ = (uint64_t)(a), wb_ = (uint64_t)(b);                                 \
        if (wa_ != wb_) {                                                                  \
            fprintf(stderr, "%s:%d: CHECK_EQ(%s, %s) failed: 0x%llx != 0x%llx\n", __FILE__, \
                    __LINE__, #a, #b, (unsigned long long)wa_, (unsigned long long)wb_);   \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

/* A word of the running thread's TEB (gs:[off]). */
static inline void *wteb(uintptr_t off)
{
    void *v;
    __asm__ volatile("movq %%gs:(%1), %0" : "=r"(v) : "r"(off));
    return v;
}
#define WTEB_STACK_BASE 0x08
#define WTEB_STACK_LIMIT 0x10
#define WTEB_DEALLOC 0x1478

/* Check what win_regs.S stored after a switch (out[0..7] the callee-saved
 * GPRs, out[8..27] both halves of xmm6-15, out[28] MXCSR | x87 CW << 32)
 * against the values derived from seed that it loaded before it. */
static inline void check_regs(const uint64_t out[29], uint64_t seed)
{
    for (int i = 0; i < 8; i++)
        WCHECK_EQ(out[i], seed + 1 + i);
    for (int n = 6; n <= 15; n++) {
        WCHECK_EQ(out[8 + 2 * (n - 6)], seed + 0x100 + n);
        WCHECK_EQ(out[9 + 2 * (n - 6)], seed + 0x200 + n);
    }
    uint64_t r = seed & 3;
    WCHECK_EQ(out[28] & 0xffffffff, 0x1f80 | r << 13);
    WCHECK_EQ((out[28] >> 32) & 0xffff, 0x27f | r << 10);
}

#endif
