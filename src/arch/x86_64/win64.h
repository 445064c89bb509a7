/*
 * win64.h - the Windows x64 face of the architecture layer: what arch.h
 * promises (may__ctx_jump, MAY__FRAME_*, may__ctx_switch), in terms of the
 * Windows switch (switch_win64.S, jump_win64.h, frame_win64.h).
 *
 * The Windows ABI saves more (rdi, rsi, xmm6-15) and the TIB must describe
 * the running stack (StackBase, StackLimit, DeallocationStack: SEH, stack
 * probes and the guard-page growth read them), so a context's frame is
 * Windows' own; may__ctx has the same one field (sp) as may__win_ctx.  A
 * new context is made by internal.h's MAY__CTX_MAKE, which hands the
 * stack's TIB words to may__win_ctx_make.  The thread pointer read of
 * cpu.h's MAY__TLS_IE_LOAD has no Windows counterpart: internal.h reads
 * the worker from a TLS slot of the TEB instead (may__cur_worker).
 */
#ifndef MAY_ARCH_WIN64_H
#define MAY_ARCH_WIN64_H

#include "jump_win64.h"

#define MAY__FRAME_PC MAY__WJFRAME_PC
#define MAY__FRAME_FP MAY__WJFRAME_FP
#define MAY__FRAME_SIZE MAY__WJFRAME_SIZE
#define MAY__FRAME_FP_REG "rbp"

_Static_assert(sizeof(may__ctx) == sizeof(may__win_ctx), "one saved stack pointer each");

static inline __attribute__((always_inline)) struct may__worker *
may__ctx_jump(may__ctx *from, may__ctx *to, struct may__worker *self_worker)
{
    return (struct may__worker *)may__win_ctx_jump((may__win_ctx *)from, (may__win_ctx *)to,
                                                   self_worker);
}

/* The out-of-line switch (generators) is switch_win64.S's. */
#define may__ctx_switch(from, to) may__win_ctx_switch((may__win_ctx *)(from), (may__win_ctx *)(to))

/* A spin-wait hint to the CPU. */
static inline void cpu_relax(void)
{
    __builtin_ia32_pause();
}
#endif
