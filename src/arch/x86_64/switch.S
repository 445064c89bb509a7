/*
 * Context switch for x86-64, System V ABI.
 *
 * The protocol.  A saved context is a stack pointer; the word it points at
 * is the address to resume at.  Whoever switches to a context loads its
 * stack pointer, pops that address and jumps to it; everything else the
 * context saved lies under that word and is restored by the code at the
 * resume address itself.  So the hot switch can be inline assembly in C
 * (src/arch/x86_64/jump.h) that saves only what the compiler cannot: the
 * frame pointer and the FP control state; the compiler saves any other live
 * register because the asm declares them clobbered.  A jump rather than a
 * `ret` keeps the return-address predictor in step: a `ret` into another
 * context's frame would be mispredicted on every switch.
 *
 * The ABI makes rbx, rbp, r12-r15, rsp, the MXCSR control bits and the x87
 * control word callee-saved; the out-of-line may__ctx_switch below (for
 * callers that are plain C calls, like generators) saves all of them:
 *
 *   sp+0   resume address (label 1 below)
 *   sp+8   MXCSR (4 bytes) and x87 control word (2 bytes)
 *   sp+16  r15, r14, r13, r12, rbx, rbp (sp+16 .. sp+56)
 *   sp+64  return address of the call
 *
 * A new context (may__ctx_make, frame.h) is: may__ctx_start, entry, arg.
 *
 * Control-flow protection (CET).  Built with -fcf-protection=branch or
 * =full (the compiler then defines __CET__, bit 0 for indirect-branch
 * tracking, IBT, bit 1 for shadow stacks, SHSTK), every place reached by
 * an indirect branch starts with endbr64: the functions below and each
 * resume address, which the other side reaches with `jmp *%rcx` (jump.h's
 * label too).  The GNU property note at the end then says this object is
 * IBT-compatible; without it the linker would turn IBT off for any program
 * that links libmay statically.  It never claims SHSTK, because a shadow
 * stack cannot follow these switches: a coroutine's calls push return
 * addresses on the thread's one shadow stack, and after a switch another
 * coroutine's returns would pop them, which a CPU enforcing shadow stacks
 * stops with a control-protection fault.  (Supporting SHSTK would take a
 * shadow stack per coroutine, switched with saveprevssp/rstorssp, as
 * glibc's swapcontext does.)  The linker ANDs the notes of all objects, so
 * a program that links libmay runs without SHSTK, and says so in its own
 * note, rather than fault at its first switch.
 */
#if defined(__CET__) && (__CET__ & 1)
#define ENDBR endbr64
#else
#define ENDBR
#endif

        .text

/* void may__ctx_switch(may__ctx *from, may__ctx *to)
 *   rdi = from, rsi = to */
        .globl  may__ctx_switch
        .hidden may__ctx_switch
        .type   may__ctx_switch,@function
        .p2align 4
may__ctx_switch:
        .cfi_startproc
        ENDBR
        pushq   %rbp                /* callee-saved: frame pointer */
        pushq   %rbx                /* callee-saved */
        pushq   %r12                /* callee-saved */
        pushq   %r13                /* callee-saved */
        pushq   %r14                /* callee-saved */
        pushq   %r15                /* callee-saved */
        subq    $8, %rsp            /* slot for the FP control state */
        fnstcw  4(%rsp)             /* x87 control word */
        stmxcsr (%rsp)              /* SSE rounding mode / exception masks */
        leaq    1f(%rip), %rax
        pushq   %rax                /* where this context resumes */
        movq    %rsp, (%rdi)        /* from->sp = rsp */
        movq    (%rsi), %rsp        /* rsp = to->sp: now on the other stack */
        popq    %rcx                /* its resume address */
        jmpq    *%rcx
1:      ENDBR                       /* resumed (by a jmp: a branch target) */
        fldcw   4(%rsp)             /* restore the x87 control word */
        ldmxcsr (%rsp)              /* and the SSE control state */
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret                         /* to our caller */
        .cfi_endproc
        .size   may__ctx_switch,.-may__ctx_switch

/* First code run on a new stack, reached by the switch's jmp: rsp points
 * at entry, then its argument.  After the two pops rsp is 16-byte aligned,
 * as the call requires. */
        .globl  may__ctx_start
        .hidden may__ctx_start
        .type   may__ctx_start,@function
        .p2align 4
may__ctx_start:
        .cfi_startproc
        .cfi_undefined rip          /* outermost frame for unwinders */
        ENDBR
        popq    %rax                /* entry */
        popq    %rdi                /* entry's argument */
        xorl    %ebp, %ebp          /* terminate frame-pointer chains */
        callq   *%rax               /* entry(arg); never returns */
        ud2
        .cfi_endproc
        .size   may__ctx_start,.-may__ctx_start

        .section .note.GNU-stack,"",@progbits

#if defined(__CET__) && (__CET__ & 1)
/* NT_GNU_PROPERTY_TYPE_0 with GNU_PROPERTY_X86_FEATURE_1_AND = IBT only
 * (see the top of this file for why not SHSTK). */
        .section .note.gnu.property,"a"
        .p2align 3
        .long   4                   /* name size: "GNU\0" */
        .long   16                  /* descriptor size */
        .long   5                   /* NT_GNU_PROPERTY_TYPE_0 */
        .asciz  "GNU"
        .long   0xc0000002          /* GNU_PROPERTY_X86_FEATURE_1_AND */
        .long   4                   /* its data size */
        .long   1                   /* GNU_PROPERTY_X86_FEATURE_1_IBT */
        .p2align 3                  /* pad the descriptor to 8 bytes */
#endif
