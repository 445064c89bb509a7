/*
 * Context switch for AArch64, AAPCS64.
 *
 * Callee-saved: x19-x28, the frame pointer x29, the link register x30
 * (our return address), sp, and the low 64 bits of v8-v15 (d8-d15).  The
 * FPCR (rounding mode, flush-to-zero, default NaN) is the thread's FP
 * control state; it is saved too, so that each coroutine keeps its own,
 * as on x86-64 (MXCSR and x87 control word) and as OpenBSD's setjmp does.
 * Reading it is cheap; writing it may not be, so it is written only when
 * it differs.  The saved frame (176 bytes) is laid out in frame.h, whose
 * offsets the code below uses: the dump and the gdb extension read the
 * same layout.
 *
 * Everything else is caller-saved, and the scheduler calls
 * may__ctx_switch as an ordinary function (jump.h), so the compiler
 * already keeps nothing else live across it: the upper halves of v8-v15,
 * v0-v7 and v16-v31, and with SVE the z and p registers (the SVE PCS,
 * which keeps more, applies only to callees marked for it, and this is not
 * one).  SME state is not switched: a compiler leaves streaming mode
 * around a call to a function that is not streaming-compatible, like this
 * one, but ZA and its lazy-save pointer (TPIDR2_EL0) are per-thread state,
 * so switching with ZA live is not supported.
 *
 * Branch protection.  Built with -mbranch-protection=bti or =standard (the
 * compiler then defines __ARM_FEATURE_BTI_DEFAULT), each function starts
 * with a BTI landing pad and the GNU property note at the end says this
 * object is BTI-compatible; without it the linker would turn BTI off for a
 * program that links libmay statically.  The switch resumes the other
 * context with `ret`, which BTI does not check, so the resume addresses
 * need no landing pad; may__ctx_switch gets one because a linker veneer
 * may reach it with `br x16`, and may__ctx_start, reached only by `ret`,
 * gets one like every other function.  Pointer authentication of return
 * addresses (pac-ret) is not claimed: these functions do not sign the x30
 * they save.
 */
#include "frame.h"

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define BTI_C hint #34              /* bti c, as a hint any assembler knows */
#else
#define BTI_C
#endif

        .text

/* void may__ctx_switch(may__ctx *from, may__ctx *to)
 *   x0 = from, x1 = to */
        .globl  may__ctx_switch
        .hidden may__ctx_switch
        .type   may__ctx_switch,%function
        .p2align 4
may__ctx_switch:
        .cfi_startproc
        BTI_C
        sub     sp, sp, #MAY__FRAME_SIZE
        stp     x19, x20, [sp, #MAY__FRAME_X19] /* callee-saved general registers */
        stp     x21, x22, [sp, #MAY__FRAME_X21]
        stp     x23, x24, [sp, #MAY__FRAME_X23]
        stp     x25, x26, [sp, #MAY__FRAME_X25]
        stp     x27, x28, [sp, #MAY__FRAME_X27]
        stp     x29, x30, [sp, #MAY__FRAME_X29] /* frame pointer, return address */
        stp     d8, d9, [sp, #MAY__FRAME_D8]    /* callee-saved FP/SIMD (low halves) */
        stp     d10, d11, [sp, #MAY__FRAME_D10]
        stp     d12, d13, [sp, #MAY__FRAME_D12]
        stp     d14, d15, [sp, #MAY__FRAME_D14]
        mrs     x10, fpcr                       /* FP control state */
        str     x10, [sp, #MAY__FRAME_FPCR]
        mov     x9, sp
        str     x9, [x0]                        /* from->sp = sp */
        ldr     x9, [x1]
        mov     sp, x9                          /* sp = to->sp: now on the other stack */
        ldp     x19, x20, [sp, #MAY__FRAME_X19]
        ldp     x21, x22, [sp, #MAY__FRAME_X21]
        ldp     x23, x24, [sp, #MAY__FRAME_X23]
        ldp     x25, x26, [sp, #MAY__FRAME_X25]
        ldp     x27, x28, [sp, #MAY__FRAME_X27]
        ldp     x29, x30, [sp, #MAY__FRAME_X29]
        ldp     d8, d9, [sp, #MAY__FRAME_D8]
        ldp     d10, d11, [sp, #MAY__FRAME_D10]
        ldp     d12, d13, [sp, #MAY__FRAME_D12]
        ldp     d14, d15, [sp, #MAY__FRAME_D14]
        ldr     x9, [sp, #MAY__FRAME_FPCR]      /* its FP control state; x10 is */
        cmp     x9, x10                         /* the one the thread has now */
        b.eq    1f
        msr     fpcr, x9
1:      add     sp, sp, #MAY__FRAME_SIZE
        ret                                     /* to x30 */
        .cfi_endproc
        .size   may__ctx_switch,.-may__ctx_switch

/* First code run on a new stack: may__ctx_make stored entry in x19 and its
 * argument in x20; x29 is zero so frame-pointer walks stop here. */
        .globl  may__ctx_start
        .hidden may__ctx_start
        .type   may__ctx_start,%function
        .p2align 4
may__ctx_start:
        .cfi_startproc
        .cfi_undefined x30
        BTI_C
        mov     x0, x20                         /* entry's argument */
        blr     x19                             /* entry(arg); never returns */
        brk     #0
        .cfi_endproc
        .size   may__ctx_start,.-may__ctx_start

        .section .note.GNU-stack,"",@progbits

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
/* NT_GNU_PROPERTY_TYPE_0 with GNU_PROPERTY_AARCH64_FEATURE_1_AND = BTI
 * only (see the top of this file for why not PAC). */
        .section .note.gnu.property,"a"
        .p2align 3
        .long   4                               /* name size: "GNU\0" */
        .long   16                              /* descriptor size */
        .long   5                               /* NT_GNU_PROPERTY_TYPE_0 */
        .asciz  "GNU"
        .long   0xc0000000                      /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
        .long   4                               /* its data size */
        .long   1                               /* GNU_PROPERTY_AARCH64_FEATURE_1_BTI */
        .p2align 3                              /* pad the descriptor to 8 bytes */
#endif
