/*
 * Context switch for x86-64, System V ABI.
 *
 * The ABI makes rbx, rbp, r12-r15, rsp, the MXCSR control bits and the x87
 * control word callee-saved; everything else is clobbered by a call, so a
 * switch (which is a call) saves exactly those.  Saved frame, from the saved
 * sp upwards:
 *
 *   sp+0   MXCSR (4 bytes) and x87 control word (2 bytes), 8-byte slot
 *   sp+8   r15
 *   sp+16  r14
 *   sp+24  r13
 *   sp+32  r12
 *   sp+40  rbx
 *   sp+48  rbp
 *   sp+56  return address
 */
        .text

/* void *may__ctx_switch(may__ctx *from, may__ctx *to, void *arg)
 *   rdi = from, rsi = to, rdx = arg (returned in rax on the other side) */
        .globl  may__ctx_switch
        .hidden may__ctx_switch
        .type   may__ctx_switch,@function
        .p2align 4
may__ctx_switch:
        .cfi_startproc
        pushq   %rbp                /* callee-saved: frame pointer */
        pushq   %rbx                /* callee-saved */
        pushq   %r12                /* callee-saved */
        pushq   %r13                /* callee-saved */
        pushq   %r14                /* callee-saved */
        pushq   %r15                /* callee-saved */
        subq    $8, %rsp            /* slot for the FP control state */
        stmxcsr (%rsp)              /* SSE rounding mode / exception masks */
        fnstcw  4(%rsp)             /* x87 control word */
        movq    %rsp, (%rdi)        /* from->sp = rsp */
        movq    (%rsi), %rsp        /* rsp = to->sp: now on the other stack */
        ldmxcsr (%rsp)              /* restore its SSE control state */
        fldcw   4(%rsp)             /* restore its x87 control word */
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        movq    %rdx, %rax          /* hand arg to the resumed side */
        ret                         /* to its return address */
        .cfi_endproc
        .size   may__ctx_switch,.-may__ctx_switch

/* First code run on a new stack: may__ctx_make stored entry in rbx and its
 * argument in r12.  rsp is 16-byte aligned here, as the call requires. */
        .globl  may__ctx_start
        .hidden may__ctx_start
        .type   may__ctx_start,@function
        .p2align 4
may__ctx_start:
        .cfi_startproc
        .cfi_undefined rip          /* outermost frame for unwinders */
        xorl    %ebp, %ebp          /* terminate frame-pointer chains */
        movq    %r12, %rdi          /* entry's argument */
        callq   *%rbx               /* entry(arg); never returns */
        ud2
        .cfi_endproc
        .size   may__ctx_start,.-may__ctx_start

        .section .note.GNU-stack,"",@progbits
