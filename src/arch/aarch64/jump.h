/*
 * jump.h - the context switch as used by the scheduler on AArch64: the
 * out-of-line may__ctx_switch (switch.S), which saves every callee-saved
 * register.  Being an ordinary call, it needs no clobber list: the
 * compiler already keeps nothing live across it in a caller-saved register
 * (switch.S lists which those are, SVE's included).
 */
#ifndef MAY_ARCH_JUMP_H
#define MAY_ARCH_JUMP_H

static inline __attribute__((always_inline)) struct may__worker *
may__ctx_jump(may__ctx *from, may__ctx *to, struct may__worker *self_worker)
{
    (void)self_worker;
    may__ctx_switch(from, to);
    return may__cur_worker(); /* we may be on another thread now */
}
#endif
