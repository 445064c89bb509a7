/*
 * cpu.h - the two x86-64 instructions the rest of libmay needs by name: the
 * thread-pointer read behind may__cur_worker() (src/internal.h, which
 * explains why a coroutine must read its worker this way) and the
 * spin-wait hint.
 */
#ifndef MAY_ARCH_CPU_H
#define MAY_ARCH_CPU_H

/* The value of the initial-exec thread-local pointer variable sym, loaded
 * afresh from the thread pointer (%fs) every time: a volatile asm the
 * compiler can neither reuse nor move across a switch.  The variable's
 * offset from the thread pointer is the same in every thread. */
#define MAY__TLS_IE_LOAD(sym)                                                                     \
    __extension__({                                                                               \
        void *v_;                                                                                 \
        __asm__ volatile("movq " #sym "@gottpoff(%%rip), %0\n\t"                                 \
                         "movq %%fs:(%0), %0"                                                     \
                         : "=r"(v_));                                                             \
        v_;                                                                                       \
    })

/* A spin-wait hint to the CPU. */
static inline void cpu_relax(void)
{
    __builtin_ia32_pause();
}
#endif
