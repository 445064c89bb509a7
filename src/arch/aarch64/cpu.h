/*
 * cpu.h - the two AArch64 instructions the rest of libmay needs by name:
 * the thread-pointer read behind may__cur_worker() (src/internal.h, which
 * explains why a coroutine must read its worker this way) and the
 * spin-wait hint.
 */
#ifndef MAY_ARCH_CPU_H
#define MAY_ARCH_CPU_H

/* The value of the initial-exec thread-local pointer variable sym, loaded
 * afresh from the thread pointer (tpidr_el0) every time: a volatile asm the
 * compiler can neither reuse nor move across a switch.  The variable's
 * offset from the thread pointer (from the GOT) is the same in every
 * thread. */
#define MAY__TLS_IE_LOAD(sym)                                                                     \
    __extension__({                                                                               \
        void *v_;                                                                                 \
        uintptr_t off_;                                                                           \
        __asm__ volatile("mrs  %0, tpidr_el0\n\t"                                                 \
                         "adrp %1, :gottprel:" #sym "\n\t"                                        \
                         "ldr  %1, [%1, #:gottprel_lo12:" #sym "]\n\t"                            \
                         "ldr  %0, [%0, %1]"                                                      \
                         : "=&r"(v_), "=&r"(off_));                                               \
        v_;                                                                                       \
    })

/* A spin-wait hint to the CPU. */
static inline void cpu_relax(void)
{
    __asm__ volatile("yield" ::: "memory");
}
#endif
