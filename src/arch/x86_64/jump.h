/*
 * jump.h - the inline context switch for x86-64 (protocol in switch.S).
 *
 * Saves the frame pointer and the FP control state under a resume address,
 * switches stacks and jumps to the other context's resume address, handing
 * it the current worker in rdx.  Every
 * other register is declared clobbered, so the compiler keeps live values
 * in memory across the switch exactly as it would across a call, and
 * nothing is saved twice.  The 128 bytes skipped first protect a red zone
 * the enclosing function might use.  The frame it leaves is the one
 * frame.h describes for the dump and the debugger (checked below).
 *
 * Which registers a switch destroys.  The System V ABI makes every vector
 * register caller-saved, so declaring a register clobbered is all it takes
 * to have the compiler keep nothing live in it across the switch (it then
 * saves a value to memory first, as around a call).  The list must name
 * every register the compiler may allocate for the target it compiles for:
 * xmm0-15, the x87 and MMX registers always; with AVX-512 (-mavx512f, or
 * -march=native on a CPU that has it) also xmm16-31 (which clobbers the
 * whole zmm16-31) and the mask registers k0-k7, which a compiler otherwise
 * treats as surviving the switch and so may keep a live value in, where
 * the next context overwrites it (tests/test_avx512.c); with APX (-mapxf)
 * also r16-r31.  A compiler that does not target them rejects those names,
 * hence the conditions.  When the code may use AVX, the switch also clears
 * the upper halves of the vector registers (vzeroupper, free since they
 * hold nothing live): the context resumed may run legacy SSE code, which a
 * dirty upper state slows down until something clears it, and the
 * compiler does not clear it before an asm statement as it does before a
 * call.
 *
 * The resume address is reached by an indirect jmp, so a build for
 * indirect-branch tracking (-fcf-protection, __CET__ bit 0) starts it with
 * endbr64 (switch.S says why shadow stacks cannot be supported).
 *
 * The FP control state is read and written x87 word first, MXCSR second:
 * on the EPYC of docs/BENCHMARKS.md that order makes the yield ping-pong
 * 6.9 ns instead of 7.2 (either order alone, saves or loads, gains
 * nothing).  The two reads and two loads cost 1.8 ns of the switch.
 */
#ifndef MAY_ARCH_JUMP_H
#define MAY_ARCH_JUMP_H

#if defined(__AVX512F__)
#define MAY__JUMP_CLOBBER_AVX512                                                                  \
    , "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25",   \
        "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k0", "k1", "k2", "k3", "k4", "k5", \
        "k6", "k7"
#else
#define MAY__JUMP_CLOBBER_AVX512
#endif
#if defined(__APX_F__)
#define MAY__JUMP_CLOBBER_APX                                                                     \
    , "r16", "r17", "r18", "r19", "r20", "r21", "r22", "r23", "r24", "r25", "r26", "r27", "r28",  \
        "r29", "r30", "r31"
#else
#define MAY__JUMP_CLOBBER_APX
#endif
#if defined(__AVX__)
#define MAY__JUMP_VZEROUPPER "vzeroupper\n\t"
#else
#define MAY__JUMP_VZEROUPPER
#endif
#if defined(__CET__) && (__CET__ & 1)
#define MAY__JUMP_ENDBR "endbr64\n\t"
#else
#define MAY__JUMP_ENDBR
#endif

/* The frame below: resume address, FP control state, rbp, red zone. */
_Static_assert(MAY__FRAME_PC == 0 && MAY__FRAME_FP == 16 && MAY__FRAME_SIZE == 24 + 128,
               "jump.h's frame differs from frame.h's layout");

/* Returns the worker that resumed us, which the resumer passes in rdx (a
 * coroutine may come back on another thread). */
static inline __attribute__((always_inline)) struct may__worker *
may__ctx_jump(may__ctx *from, may__ctx *to, struct may__worker *self_worker)
{
    __asm__ volatile("subq    $128, %%rsp\n\t"      /* step over the red zone */
                     "pushq   %%rbp\n\t"            /* frame pointer */
                     "subq    $8, %%rsp\n\t"
                     "fnstcw  4(%%rsp)\n\t"         /* x87 control word */
                     "stmxcsr (%%rsp)\n\t"          /* SSE control state */
                     "leaq    1f(%%rip), %%rax\n\t"
                     "pushq   %%rax\n\t"            /* resume address */
                     "movq    %%rsp, (%%rdi)\n\t"   /* from->sp */
                     "movq    (%%rsi), %%rsp\n\t"   /* to->sp */
                     "popq    %%rcx\n\t"
                     MAY__JUMP_VZEROUPPER             /* (AVX) clean upper state */
                     "jmpq    *%%rcx\n\t"           /* into the other context */
                     "1:\n\t"                       /* resumed here */
                     MAY__JUMP_ENDBR                  /* (IBT) a jmp's target */
                     "fldcw   4(%%rsp)\n\t"
                     "ldmxcsr (%%rsp)\n\t"
                     "addq    $8, %%rsp\n\t"
                     "popq    %%rbp\n\t"
                     "addq    $128, %%rsp\n\t"
                     : "+D"(from), "+S"(to), "+d"(self_worker)
                     :
                     : "rax", "rbx", "rcx", "r8", "r9", "r10", "r11", "r12", "r13",
                       "r14", "r15", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
                       "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
                       "xmm13", "xmm14", "xmm15", "st", "st(1)", "st(2)", "st(3)", "st(4)",
                       "st(5)", "st(6)", "st(7)", "mm0", "mm1", "mm2", "mm3", "mm4", "mm5",
                       "mm6", "mm7" MAY__JUMP_CLOBBER_AVX512 MAY__JUMP_CLOBBER_APX);
    return self_worker;
}
#endif
