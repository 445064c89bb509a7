/*
 * Context switch for x86-64, Windows x64 ABI (PE/COFF, mingw-w64's GNU as).
 *
 * The protocol is switch.S's: a saved context is a stack pointer; the word
 * it points at is the address to resume at.  Whoever switches to a context
 * loads its stack pointer, pops that address and jumps to it; the code at
 * the resume address restores everything else from the stack.  This is the
 * out-of-line switch, for plain C callers; the scheduler's hot path is the
 * inline jump_win64.h, which saves a shorter frame (frame_win64.h), and
 * either resumes a context the other saved.
 *
 * What Windows adds to System V.  The Windows x64 ABI makes more registers
 * callee-saved: rbx, rbp, rdi, rsi, r12-r15 and rsp, and xmm6-xmm15 (all
 * 128 bits), besides the MXCSR control bits and the x87 control word.  The
 * first two arguments arrive in rcx and rdx.  And the thread's stack is
 * described in the TIB (the start of the TEB, at gs:0), which the system
 * reads, not just the code:
 *
 *   gs:[0x08]    StackBase: the top of the stack (highest address + 1)
 *   gs:[0x10]    StackLimit: the lowest committed byte above the guard page
 *   gs:[0x1478]  DeallocationStack: the start of the stack's reservation
 *
 * The exception dispatcher and RtlUnwindEx accept a frame only between
 * StackLimit and StackBase (else STATUS_BAD_STACK, or the frame is marked
 * invalid and the search stops); a walk ends when its stack pointer reaches
 * StackBase.  __chkstk in MSVC-built code probes only the pages below
 * StackLimit, so a wrong (lower) StackLimit lets a big frame jump over the
 * guard page unprobed.  The memory manager grows a stack whose guard page
 * is touched only if the page lies between DeallocationStack and StackBase
 * (else it is a plain one-shot STATUS_GUARD_PAGE_VIOLATION), and it raises
 * STATUS_STACK_OVERFLOW when the growth reaches the last pages of the
 * reservation.  So each context carries its three words and the switch
 * saves the running ones and loads the next ones.  It saves them rather
 * than copying them from the stack's descriptor because the system moves
 * StackLimit down as the stack grows.  (x64 has no ExceptionList chain at
 * gs:[0]: SEH there is table-based, found from the return addresses, so
 * nothing else of the TIB needs switching.  Win32 fibers also switch
 * FiberData, gs:[0x20]; this runtime does not use fibers.)
 *
 * Between the stack switch and the TIB load below, the TIB describes the
 * stack just left while rsp is on the next; nothing can raise an exception
 * in those few instructions, and no thread can look at another's TIB and
 * stack pointer together and act on it (SuspendThread and GetThreadContext
 * do not).
 *
 * Control-flow guard and CET shadow stacks: mingw-w64 marks neither by
 * default; a shadow stack (/CETCOMPAT) cannot follow these switches for
 * the reason switch.S gives.
 */
#include "frame_win64.h"

        .text

/* void may__win_ctx_switch(may__win_ctx *from, may__win_ctx *to)
 *   rcx = from, rdx = to.  Leaves the frame frame_win64.h draws.  It has no
 *   unwind data: it is a leaf to the unwinder, and no exception can arise
 *   in it but a stack overflow on its pushes, which the vectored handler
 *   reports without unwinding (src/win/stack_win.c). */
        .globl  may__win_ctx_switch
        .def    may__win_ctx_switch; .scl 2; .type 32; .endef
        .p2align 4
may__win_ctx_switch:
        pushq   %rbp                /* callee-saved: frame pointer */
        pushq   %rbx                /* callee-saved */
        pushq   %rdi                /* callee-saved (Windows only) */
        pushq   %rsi                /* callee-saved (Windows only) */
        pushq   %r12                /* callee-saved */
        pushq   %r13                /* callee-saved */
        pushq   %r14                /* callee-saved */
        pushq   %r15                /* callee-saved */
        subq    $200, %rsp          /* FP control, TIB, xmm6-15 (and 8 unused) */
        stmxcsr (%rsp)              /* SSE rounding mode / exception masks */
        fnstcw  4(%rsp)             /* x87 control word */
        movq    %gs:0x08, %rax
        movq    %rax, 8(%rsp)       /* TIB StackBase */
        movq    %gs:0x10, %rax
        movq    %rax, 16(%rsp)      /* TIB StackLimit (the system moves it) */
        movq    %gs:0x1478, %rax
        movq    %rax, 24(%rsp)      /* TEB DeallocationStack */
        movaps  %xmm6, 32(%rsp)     /* callee-saved (Windows only), aligned: */
        movaps  %xmm7, 48(%rsp)     /*   rsp is 16-byte aligned here (entry */
        movaps  %xmm8, 64(%rsp)     /*   rsp = 8 mod 16, then 64 + 200 bytes) */
        movaps  %xmm9, 80(%rsp)
        movaps  %xmm10, 96(%rsp)
        movaps  %xmm11, 112(%rsp)
        movaps  %xmm12, 128(%rsp)
        movaps  %xmm13, 144(%rsp)
        movaps  %xmm14, 160(%rsp)
        movaps  %xmm15, 176(%rsp)
        leaq    1f(%rip), %rax
        pushq   %rax                /* where this context resumes */
        movq    %rsp, (%rcx)        /* from->sp = rsp */
        movq    (%rdx), %rsp        /* rsp = to->sp: now on the other stack */
        popq    %rax                /* its resume address */
        jmpq    *%rax               /* (a jmp, not ret: see switch.S) */
1:      movaps  32(%rsp), %xmm6     /* resumed: restore xmm6-15 */
        movaps  48(%rsp), %xmm7
        movaps  64(%rsp), %xmm8
        movaps  80(%rsp), %xmm9
        movaps  96(%rsp), %xmm10
        movaps  112(%rsp), %xmm11
        movaps  128(%rsp), %xmm12
        movaps  144(%rsp), %xmm13
        movaps  160(%rsp), %xmm14
        movaps  176(%rsp), %xmm15
        movq    8(%rsp), %rax
        movq    %rax, %gs:0x08      /* this stack's StackBase */
        movq    16(%rsp), %rax
        movq    %rax, %gs:0x10      /* its StackLimit */
        movq    24(%rsp), %rax
        movq    %rax, %gs:0x1478    /* its DeallocationStack */
        fldcw   4(%rsp)             /* restore the x87 control word */
        ldmxcsr (%rsp)              /* and the SSE control state */
        addq    $200, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rsi
        popq    %rdi
        popq    %rbx
        popq    %rbp
        ret                         /* to our caller */

/* First code run on a new stack, reached by the switch's jmp: rsp points at
 * entry, arg and the three TIB words (frame_win64.h), then a zero.  The FP
 * control state is inherited from the context that switched here. */
        .globl  may__win_ctx_start
        .def    may__win_ctx_start; .scl 2; .type 32; .endef
        .p2align 4
may__win_ctx_start:
        popq    %rax                /* entry */
        popq    %rcx                /* entry's argument (first argument) */
        popq    %rdx
        movq    %rdx, %gs:0x08      /* StackBase: the top of this stack */
        popq    %rdx
        movq    %rdx, %gs:0x10      /* StackLimit */
        popq    %rdx
        movq    %rdx, %gs:0x1478    /* DeallocationStack */
        /* rsp = top - 8, at the zero: as at a function's entry, with a
         * return address that ends stack walks.  Fall into a function
         * with unwind data, so an unwinder can step over it. */

/* The outermost frame of every context.  Its unwind data says "40 bytes
 * allocated, return address above them": unwinding it yields rip = 0 and
 * rsp = StackBase, where the dispatcher and RtlUnwindEx stop. */
        .def    may__win_ctx_boot; .scl 3; .type 32; .endef
may__win_ctx_boot:
        .seh_proc may__win_ctx_boot
        subq    $40, %rsp           /* 32 bytes of shadow space + 8 to align */
        .seh_stackalloc 40
        .seh_endprologue
        xorl    %ebp, %ebp          /* terminate frame-pointer chains */
        callq   *%rax               /* entry(arg); never returns */
        ud2
        .seh_endproc
