/*
 * frame.h - the x86-64 saved context: the layout that the dump
 * (src/debug.c) and the gdb extension (gdb/may-gdb.py) read, and the frame
 * a new context starts from.  This header is the one place that knows
 * them; it is included by C (through src/arch/arch.h) and may be by
 * assembly (the C part is hidden from the assembler).
 *
 * A switched-out coroutine is a stack pointer (may__ctx.sp).  Coroutines
 * are always switched out by the inline jump (jump.h), which leaves, from
 * the saved stack pointer upwards:
 *
 *   sp+0    resume address (the label after the jump)       MAY__FRAME_PC
 *   sp+8    MXCSR (4 bytes), x87 control word (2), unused (2)
 *   sp+16   rbp, the frame pointer                           MAY__FRAME_FP
 *   sp+24   the 128-byte red zone it stepped over
 *   sp+152  the stack pointer the code at the resume address runs with
 *                                                            MAY__FRAME_SIZE
 *
 * The out-of-line may__ctx_switch (switch.S), used only by generators,
 * leaves a longer frame (it also saves rbx and r12-r15); no debugger reads
 * it.  A context that has never run was made by may__ctx_make below.
 */
#ifndef MAY_ARCH_FRAME_H
#define MAY_ARCH_FRAME_H

#define MAY__FRAME_PC 0      /* byte offset of the resume address */
#define MAY__FRAME_FP 16     /* byte offset of the saved frame pointer */
#define MAY__FRAME_SIZE 152  /* saved sp + this = the resumed code's sp */
#define MAY__FRAME_FP_REG "rbp" /* the frame pointer, as gdb names it */

#ifndef __ASSEMBLER__
#include <stdint.h>

/* The first code a new context runs (switch.S). */
void may__ctx_start(void);

/* Prepare *ctx so that switching to it calls entry(arg) on the stack whose
 * highest usable address is top (entry must never return).  The frame is
 * the resume address, which the switch pops and jumps to, then what
 * may__ctx_start pops: entry and its argument; after those pops the stack
 * pointer is top rounded down to 16 bytes, as a call requires. */
static inline __attribute__((always_inline)) void may__ctx_make(may__ctx *ctx, void *top,
                                                                void (*entry)(void *), void *arg)
{
    uint64_t *sp = (uint64_t *)((uintptr_t)top & ~(uintptr_t)15) - 3;
    sp[0] = (uint64_t)(uintptr_t)may__ctx_start;
    sp[1] = (uint64_t)(uintptr_t)entry;
    sp[2] = (uint64_t)(uintptr_t)arg;
    ctx->sp = sp;
}
#endif
#endif
