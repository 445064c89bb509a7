/*
 * arch.h - the architecture layer: everything libmay knows about the
 * processor, behind one include (src/internal.h includes it once, after
 * may__ctx, may__ctx_switch and a declaration of may__cur_worker).  No file
 * outside src/arch names a register or a saved-register offset.  Each
 * src/arch/<arch>/ holds:
 *
 *   switch.S  may__ctx_switch, the switch as an ordinary call, and
 *             may__ctx_start, the first code a new context runs; with
 *             their control-flow protection notes (CET IBT, BTI)
 *   jump.h    may__ctx_jump, the switch the scheduler uses (inline
 *             assembly on x86-64, with the list of registers it destroys)
 *   frame.h   the layout of a switched-out context (MAY__FRAME_*), which
 *             src/debug.c reads and exports to gdb/may-gdb.py in the table
 *             may__frame_layout, and may__ctx_make, which builds the frame
 *             a new context starts from
 *   cpu.h     the thread-pointer read behind may__cur_worker
 *             (MAY__TLS_IE_LOAD) and the spin-wait hint cpu_relax
 *
 * A port to another architecture writes these four files, adds a case
 * below and one to MAY_ARCH in CMakeLists.txt.  Windows x64 has its own
 * ABI: x86_64/win64.h maps the promises above onto switch_win64.S,
 * jump_win64.h and frame_win64.h.
 */
#ifndef MAY_ARCH_ARCH_H
#define MAY_ARCH_ARCH_H

#if defined(__x86_64__) && defined(_WIN32)
#include "x86_64/win64.h" /* Windows x64: its own ABI, frame and TIB */
#elif defined(__x86_64__)
#include "x86_64/cpu.h"
#include "x86_64/frame.h"
#include "x86_64/jump.h"
#elif defined(__aarch64__)
#include "aarch64/cpu.h"
#include "aarch64/frame.h"
#include "aarch64/jump.h"
#else
#error "libmay: unsupported architecture (see src/arch/arch.h)"
#endif
#endif
