/*
 * frame_win64.h - the saved context of the Windows x64 switch
 * (switch_win64.S): the layout a switched-out context leaves, and the
 * frame a new context starts from.  The Windows counterpart of frame.h;
 * like it, this is the one place that knows the layout, and the assembler
 * may include it (the C part is hidden from it).
 *
 * A switched-out context is a stack pointer; from it upwards,
 * may__win_ctx_switch leaves (S = the saved stack pointer):
 *
 *   S+0     resume address (the label after the switch)   MAY__WFRAME_PC
 *   S+8     MXCSR (4 bytes), x87 control word (2), unused (2)
 *   S+16    TIB StackBase          (gs:[0x08])
 *   S+24    TIB StackLimit         (gs:[0x10])
 *   S+32    TEB DeallocationStack  (gs:[0x1478])
 *   S+40    xmm6 .. xmm15, 16 bytes each, 16-byte aligned (S+40 .. S+199)
 *   S+200   unused (keeps the xmm block aligned)
 *   S+208   r15, r14, r13, r12, rsi, rdi, rbx              (S+208 .. S+263)
 *   S+264   rbp, the frame pointer                          MAY__WFRAME_FP
 *   S+272   return address of the call to may__win_ctx_switch
 *
 * The inline switch (jump_win64.h) leaves a shorter frame, the same in its
 * first 40 bytes:
 *
 *   S+0     resume address (the label after the asm)      MAY__WJFRAME_PC
 *   S+8     MXCSR (4 bytes), x87 control word (2), unused (2)
 *   S+16    TIB StackBase, StackLimit, DeallocationStack    MAY__WJFRAME_TIB
 *   S+40    rbp, the frame pointer                          MAY__WJFRAME_FP
 *   S+48    the enclosing function's frame                  MAY__WJFRAME_SIZE
 *
 * Every other register of the inline switch's context lives where the
 * compiler put it in the enclosing function's frame.  Either switch can
 * resume a context the other saved: the resume address restores its own
 * frame (jump_win64.h says what differs).
 *
 * A context that has never run was made by may__win_ctx_make below: its
 * resume address is may__win_ctx_start, which pops the rest (see there).
 */
#ifndef MAY_ARCH_FRAME_WIN64_H
#define MAY_ARCH_FRAME_WIN64_H

#define MAY__WFRAME_PC 0     /* byte offset of the resume address */
#define MAY__WFRAME_TIB 16   /* StackBase, StackLimit, DeallocationStack */
#define MAY__WFRAME_XMM 40   /* xmm6 .. xmm15 */
#define MAY__WFRAME_FP 264   /* byte offset of the saved rbp */
#define MAY__WFRAME_SIZE 272 /* saved sp + this = the return address */

#define MAY__WJFRAME_PC 0    /* the inline switch's frame (jump_win64.h) */
#define MAY__WJFRAME_TIB 16
#define MAY__WJFRAME_FP 40
#define MAY__WJFRAME_SIZE 48 /* saved sp + this = the enclosing frame's sp */

#ifndef __ASSEMBLER__
#include <stdint.h>

/* A saved context: the stack pointer it was switched out with. */
typedef struct may__win_ctx {
    void *sp;
} may__win_ctx;

/* Save the running context in *from, resume *to (switch_win64.S).  Returns
 * when something switches back to *from. */
void may__win_ctx_switch(may__win_ctx *from, may__win_ctx *to);

/* The first code a new context runs (switch_win64.S). */
void may__win_ctx_start(void);

/* Prepare *ctx so that switching to it calls entry(arg) on the stack that
 * ends at top, with the TIB saying the stack is [limit, top) inside the
 * reservation that starts at dealloc.  top must be 16-byte aligned; base,
 * the TIB's StackBase, is top or above it.  Stack walks (exception
 * dispatch, RtlCaptureStackBackTrace) go on until the stack pointer leaves
 * [StackLimit, StackBase], reading whatever lies between top and base as
 * frames, so the library passes base = top (its control block sits above
 * top); the zero return address below is the last frame (entry must never
 * return).  The frame, from
 * the saved stack pointer up, is:
 *
 *   top-56  may__win_ctx_start (the switch pops it and jumps there)
 *   top-48  entry                  } popped by may__win_ctx_start
 *   top-40  arg                    }
 *   top-32  StackBase (base >= top) }
 *   top-24  StackLimit             }
 *   top-16  DeallocationStack      }
 *   top-8   0: the return address of may__win_ctx_start's frame, which
 *           ends every stack walk (RtlVirtualUnwind, RtlUnwindEx,
 *           RtlCaptureStackBackTrace, debuggers) at the top of the stack
 *
 * may__win_ctx_start then reserves 40 bytes (32 of shadow space for the
 * callee, 8 to align) and calls entry with rsp = top - 48, 16-byte aligned
 * as the call requires. */
static inline void may__win_ctx_make(may__win_ctx *ctx, void *top, void *base, void *limit,
                                     void *dealloc, void (*entry)(void *), void *arg)
{
    uint64_t *sp = (uint64_t *)top - 7;
    sp[0] = (uint64_t)(uintptr_t)may__win_ctx_start;
    sp[1] = (uint64_t)(uintptr_t)entry;
    sp[2] = (uint64_t)(uintptr_t)arg;
    sp[3] = (uint64_t)(uintptr_t)base;
    sp[4] = (uint64_t)(uintptr_t)limit;
    sp[5] = (uint64_t)(uintptr_t)dealloc;
    sp[6] = 0;
    ctx->sp = sp;
}
#endif
#endif
