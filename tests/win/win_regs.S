/*
 * win_regs.S - for win_switch.c: set every callee-saved register and the FP
 * control state to values made from a seed, switch away and back with
 * may__win_ctx_switch, and store what the registers hold then, for the C
 * side to compare.  It restores its caller's registers before returning.
 *
 * void win_regs_switch(may__win_ctx *from, may__win_ctx *to, uint64_t seed,
 *                      uint64_t out[29])        rcx, rdx, r8, r9
 *   out[0..7]   rbx, rbp, rdi, rsi, r12, r13, r14, r15 (expected seed+1..8)
 *   out[8..27]  xmm6..xmm15, low then high quadword
 *               (expected seed+0x100+n, seed+0x200+n for xmm n)
 *   out[28]     MXCSR (low 4 bytes), x87 control word (next 2)
 *               (rounding mode (seed & 3) in both: MXCSR 0x1f80 | r << 13,
 *               CW 0x27f | r << 10)
 *
 * The switch it calls is may__win_ctx_switch, or the function named by
 * -DWIN_REGS_TARGET=name, with the same arguments (win_jump.c passes one
 * that switches with the inline jump_win64.h).
 */
#ifndef WIN_REGS_TARGET
#define WIN_REGS_TARGET may__win_ctx_switch
#endif
        .text
        .globl  win_regs_switch
        .def    win_regs_switch; .scl 2; .type 32; .endef
        .p2align 4
win_regs_switch:
        pushq   %rbp
        pushq   %rbx
        pushq   %rdi
        pushq   %rsi
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $216, %rsp          /* shadow 32, xmm 160, fp 8, out, seed */
        movaps  %xmm6, 32(%rsp)     /* the caller's xmm6-15 */
        movaps  %xmm7, 48(%rsp)
        movaps  %xmm8, 64(%rsp)
        movaps  %xmm9, 80(%rsp)
        movaps  %xmm10, 96(%rsp)
        movaps  %xmm11, 112(%rsp)
        movaps  %xmm12, 128(%rsp)
        movaps  %xmm13, 144(%rsp)
        movaps  %xmm14, 160(%rsp)
        movaps  %xmm15, 176(%rsp)
        stmxcsr 192(%rsp)           /* the caller's FP control state */
        fnstcw  196(%rsp)
        movq    %r9, 200(%rsp)      /* out */
        movq    %r8, 208(%rsp)      /* seed */
        leaq    1(%r8), %rbx
        leaq    2(%r8), %rbp
        leaq    3(%r8), %rdi
        leaq    4(%r8), %rsi
        leaq    5(%r8), %r12
        leaq    6(%r8), %r13
        leaq    7(%r8), %r14
        leaq    8(%r8), %r15
        .irp n, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        leaq    0x100+\n(%r8), %rax
        movq    %rax, %xmm\n
        leaq    0x200+\n(%r8), %rax
        movq    %rax, %xmm0
        punpcklqdq %xmm0, %xmm\n    /* high quadword differs from the low */
        .endr
        movl    %r8d, %eax
        andl    $3, %eax
        shll    $13, %eax
        orl     $0x1f80, %eax
        movl    %eax, 24(%rsp)
        ldmxcsr 24(%rsp)            /* MXCSR rounding mode from the seed */
        movl    %r8d, %eax
        andl    $3, %eax
        shll    $10, %eax
        orl     $0x27f, %eax
        movw    %ax, 28(%rsp)
        fldcw   28(%rsp)            /* x87 rounding mode from the seed */
        call    WIN_REGS_TARGET     /* rcx, rdx: still from, to */
        movq    200(%rsp), %r9
        movq    %rbx, 0(%r9)
        movq    %rbp, 8(%r9)
        movq    %rdi, 16(%r9)
        movq    %rsi, 24(%r9)
        movq    %r12, 32(%r9)
        movq    %r13, 40(%r9)
        movq    %r14, 48(%r9)
        movq    %r15, 56(%r9)
        movups  %xmm6, 64(%r9)
        movups  %xmm7, 80(%r9)
        movups  %xmm8, 96(%r9)
        movups  %xmm9, 112(%r9)
        movups  %xmm10, 128(%r9)
        movups  %xmm11, 144(%r9)
        movups  %xmm12, 160(%r9)
        movups  %xmm13, 176(%r9)
        movups  %xmm14, 192(%r9)
        movups  %xmm15, 208(%r9)
        movq    $0, 224(%r9)
        stmxcsr 224(%r9)
        fnstcw  228(%r9)
        ldmxcsr 192(%rsp)           /* give the caller its state back */
        fldcw   196(%rsp)
        movaps  32(%rsp), %xmm6
        movaps  48(%rsp), %xmm7
        movaps  64(%rsp), %xmm8
        movaps  80(%rsp), %xmm9
        movaps  96(%rsp), %xmm10
        movaps  112(%rsp), %xmm11
        movaps  128(%rsp), %xmm12
        movaps  144(%rsp), %xmm13
        movaps  160(%rsp), %xmm14
        movaps  176(%rsp), %xmm15
        addq    $216, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rsi
        popq    %rdi
        popq    %rbx
        popq    %rbp
        ret
