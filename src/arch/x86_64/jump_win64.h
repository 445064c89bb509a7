/*
 * jump_win64.h - the inline context switch for x86-64 Windows (the Windows
 * x64 ABI; the counterpart of jump.h, protocol in switch.S and
 * switch_win64.S).  Not in the library build yet (issue 14,
 * docs/WINDOWS.md); tests/win/win_jump.c exercises it under wine.
 *
 * As jump.h does, it saves by hand only what the compiler cannot see and
 * declares every other register clobbered, so the compiler keeps live
 * values in memory across the switch exactly as across a call, and saves
 * nothing twice.  What the compiler cannot see:
 *
 * - rbp: it may be the frame pointer, which an asm may not clobber.
 * - The FP control state: MXCSR's control bits and the x87 control word
 *   are callee-saved in the Windows x64 ABI as in System V, and the
 *   compiler knows no register name for them.
 * - The TIB's StackBase, StackLimit and DeallocationStack (gs:[0x08],
 *   gs:[0x10], gs:[0x1478]; switch_win64.S says who reads them): the
 *   running context's words are saved and the next one's loaded.  Saved,
 *   not copied from the stack's descriptor, because the system moves
 *   StackLimit down as a lazily committed stack grows.
 *
 * What Windows changes from jump.h.  The ABI makes rdi, rsi and xmm6-xmm15
 * (all 128 bits) callee-saved.  Declaring them clobbered is still right:
 * the compiler then saves them in the enclosing function's prologue (with
 * unwind data, .seh_savereg/.seh_savexmm) and restores them in its
 * epilogue, as it would for any code of its own that used them, and keeps
 * no value in them across the switch.  So, with rbx, r12-r15, rdi and rsi
 * named too, what survives the switch for the caller is complete; the
 * difference from the out-of-line switch is only where it is saved.  The
 * x64 ABI has no red zone (the system may write below rsp at any time, for
 * an exception), so there is none to step over; the pushes below move rsp
 * before they write.  xmm16-31, the mask registers and r16-r31 are volatile
 * on Windows too and are clobbered under the same conditions as jump.h's;
 * vzeroupper likewise.
 *
 * The frame it leaves (frame_win64.h, MAY__WJFRAME_*; the _Static_assert
 * below): resume address, FP control state, the three TIB words, rbp.  Its
 * first 40 bytes are the out-of-line switch's, so either switch resumes a
 * context the other saved: the code at the resume address restores its own
 * frame.
 *
 * The handoff.  The resumer passes a word in rdx, which the resumed side
 * returns (the scheduler hands over its worker this way, as jump.h does).
 * Only a context resumed by this switch receives it: may__win_ctx_switch
 * passes nothing, and a new context (may__win_ctx_make) receives only
 * entry's argument.
 *
 * Between the stack switch and the TIB load, the TIB describes the stack
 * just left; switch_win64.S says why that is harmless.
 */
#ifndef MAY_ARCH_JUMP_WIN64_H
#define MAY_ARCH_JUMP_WIN64_H

#include "frame_win64.h"

#if defined(__AVX512F__)
#define MAY__WJUMP_CLOBBER_AVX512                                                                 \
    , "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25",   \
        "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k0", "k1", "k2", "k3", "k4", "k5", \
        "k6", "k7"
#else
#define MAY__WJUMP_CLOBBER_AVX512
#endif
#if defined(__APX_F__)
#define MAY__WJUMP_CLOBBER_APX                                                                    \
    , "r16", "r17", "r18", "r19", "r20", "r21", "r22", "r23", "r24", "r25", "r26", "r27", "r28",  \
        "r29", "r30", "r31"
#else
#define MAY__WJUMP_CLOBBER_APX
#endif
#if defined(__AVX__)
#define MAY__WJUMP_VZEROUPPER "vzeroupper\n\t"
#else
#define MAY__WJUMP_VZEROUPPER
#endif
#if defined(__CET__) && (__CET__ & 1)
#define MAY__WJUMP_ENDBR "endbr64\n\t"
#else
#define MAY__WJUMP_ENDBR
#endif

_Static_assert(MAY__WJFRAME_PC == 0 && MAY__WJFRAME_TIB == 16 && MAY__WJFRAME_FP == 40 &&
                   MAY__WJFRAME_SIZE == 48,
               "jump_win64.h's frame differs from frame_win64.h's layout");

/* Save the running context in *from and resume *to, handing it pass.
 * Returns, when something switches back to *from, what that switch handed
 * over (meaningful only if it was this switch). */
static inline __attribute__((always_inline)) void *may__win_ctx_jump(may__win_ctx *from,
                                                                     may__win_ctx *to, void *pass)
{
    __asm__ volatile("pushq   %%rbp\n\t"            /* frame pointer */
                     "subq    $40, %%rsp\n\t"       /* FP control, TIB, resume address */
                     "movq    %%gs:0x1478, %%rax\n\t"
                     "movq    %%rax, 32(%%rsp)\n\t" /* TEB DeallocationStack */
                     "movq    %%gs:0x10, %%rax\n\t"
                     "movq    %%rax, 24(%%rsp)\n\t" /* TIB StackLimit (the system moves it) */
                     "movq    %%gs:0x08, %%rax\n\t"
                     "movq    %%rax, 16(%%rsp)\n\t" /* TIB StackBase */
                     "fnstcw  12(%%rsp)\n\t"        /* x87 control word */
                     "stmxcsr 8(%%rsp)\n\t"         /* SSE control state */
                     "leaq    1f(%%rip), %%rax\n\t"
                     "movq    %%rax, (%%rsp)\n\t"   /* resume address */
                     "movq    %%rsp, (%%rdi)\n\t"   /* from->sp */
                     "movq    (%%rsi), %%rsp\n\t"   /* to->sp: now on the other stack */
                     "popq    %%rax\n\t"
                     MAY__WJUMP_VZEROUPPER            /* (AVX) clean upper state */
                     "jmpq    *%%rax\n\t"           /* into the other context */
                     "1:\n\t"                       /* resumed here, rsp at the FP state */
                     MAY__WJUMP_ENDBR                 /* (IBT) a jmp's target */
                     "movq    8(%%rsp), %%rax\n\t"
                     "movq    %%rax, %%gs:0x08\n\t" /* this stack's StackBase */
                     "movq    16(%%rsp), %%rax\n\t"
                     "movq    %%rax, %%gs:0x10\n\t" /* its StackLimit */
                     "movq    24(%%rsp), %%rax\n\t"
                     "movq    %%rax, %%gs:0x1478\n\t" /* its DeallocationStack */
                     "fldcw   4(%%rsp)\n\t"
                     "ldmxcsr (%%rsp)\n\t"
                     "addq    $32, %%rsp\n\t"
                     "popq    %%rbp\n\t"
                     : "+D"(from), "+S"(to), "+d"(pass)
                     :
                     : "rax", "rbx", "rcx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
                       "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
                       "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
                       "xmm15", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)",
                       "st(7)", "mm0", "mm1", "mm2", "mm3", "mm4", "mm5", "mm6",
                       "mm7" MAY__WJUMP_CLOBBER_AVX512 MAY__WJUMP_CLOBBER_APX);
    return pass;
}
#endif
