/*
 * frame.h - the AArch64 saved context: the layout that the switch
 * (switch.S), the dump (src/debug.c) and the gdb extension (gdb/may-gdb.py)
 * share, and the frame a new context starts from.  This header is the one
 * place that knows them; switch.S includes it for its offsets, C includes
 * it through src/arch/arch.h (the C part is hidden from the assembler).
 *
 * A switched-out context is a stack pointer (may__ctx.sp); may__ctx_switch
 * leaves 176 bytes above it (16-byte aligned), from the saved sp upwards:
 *
 *   sp+0    x19 x20      sp+48   x25 x26      sp+96   d8  d9
 *   sp+16   x21 x22      sp+64   x27 x28      sp+112  d10 d11
 *   sp+32   x23 x24      sp+80   x29 x30      sp+128  d12 d13
 *                                             sp+144  d14 d15
 *                                             sp+160  fpcr (8), unused (8)
 *
 * x30 is where the context resumes (the switch returns to it) and x29 its
 * frame pointer.
 */
#ifndef MAY_ARCH_FRAME_H
#define MAY_ARCH_FRAME_H

#define MAY__FRAME_X19 0     /* x19, x20: a new context's entry and argument */
#define MAY__FRAME_X21 16
#define MAY__FRAME_X23 32
#define MAY__FRAME_X25 48
#define MAY__FRAME_X27 64
#define MAY__FRAME_X29 80    /* x29 (frame pointer), x30 (resume address) */
#define MAY__FRAME_D8 96
#define MAY__FRAME_D10 112
#define MAY__FRAME_D12 128
#define MAY__FRAME_D14 144
#define MAY__FRAME_FPCR 160
#define MAY__FRAME_SIZE 176  /* saved sp + this = the resumed code's sp */

#define MAY__FRAME_PC (MAY__FRAME_X29 + 8) /* byte offset of the resume address */
#define MAY__FRAME_FP MAY__FRAME_X29       /* byte offset of the frame pointer */
#define MAY__FRAME_FP_REG "x29"            /* the frame pointer, as gdb names it */

#ifndef __ASSEMBLER__
#include <stdint.h>
#include <string.h>

/* The first code a new context runs (switch.S). */
void may__ctx_start(void);

/* Prepare *ctx so that switching to it calls entry(arg) on the stack whose
 * highest usable address is top (entry must never return): a frame that
 * may__ctx_switch restores as if the context had switched out, with entry
 * and arg in x19 and x20, a zero frame pointer (frame-pointer walks stop
 * there) and may__ctx_start as the address it returns to.  The new context
 * starts with the FP control state of the thread that makes it (its
 * spawner's, as a new thread inherits its creator's). */
static inline __attribute__((always_inline)) void may__ctx_make(may__ctx *ctx, void *top,
                                                                void (*entry)(void *), void *arg)
{
    char *sp = (char *)((uintptr_t)top & ~(uintptr_t)15) - MAY__FRAME_SIZE;
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    memset(sp, 0, MAY__FRAME_SIZE);
    *(uint64_t *)(sp + MAY__FRAME_X19) = (uint64_t)(uintptr_t)entry;
    *(uint64_t *)(sp + MAY__FRAME_X19 + 8) = (uint64_t)(uintptr_t)arg;
    *(uint64_t *)(sp + MAY__FRAME_PC) = (uint64_t)(uintptr_t)may__ctx_start;
    *(uint64_t *)(sp + MAY__FRAME_FPCR) = fpcr;
    ctx->sp = sp;
}
#endif
#endif
