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
 * The FP control state is read and written x87 word first, MXCSR second:
 * on the EPYC of docs/BENCHMARKS.md that order makes the yield ping-pong
 * 6.9 ns instead of 7.2 (either order alone, saves or loads, gains
 * nothing).  The two reads and two loads cost 1.8 ns of the switch.
 */
#ifndef MAY_ARCH_JUMP_H
#define MAY_ARCH_JUMP_H

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
                     "jmpq    *%%rcx\n\t"           /* into the other context */
                     "1:\n\t"                       /* resumed here */
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
                       "mm6", "mm7");
    return self_worker;
}
#endif
