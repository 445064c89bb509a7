# may-gdb.py - gdb commands for programs built on libmay.
#
#   (gdb) source /usr/local/share/may/gdb/may-gdb.py   (or auto-loaded)
#   (gdb) may coroutines            list every coroutine
#   (gdb) may bt ID                 backtrace of coroutine ID
#   (gdb) may bt all                backtraces of every switched-out coroutine
#
# How it finds the coroutines: libmay keeps a registry of the mappings that
# hold coroutine stacks (may__regions, see src/internal.h); slot i of a
# region is a stack at first + i * stride whose control block (struct
# may_co) sits at the top, aligned down to 64 bytes, and carries
# MAY__CO_MAGIC while the coroutine exists.  The program needs debug
# information for libmay (the default RelWithDebInfo build has it).
#
# How it shows a backtrace: a switched-out coroutine's registers are saved
# on its own stack.  Where they lie is architecture knowledge, which this
# script does not hold: it reads the table may__frame_layout from the
# program (src/debug.c fills it from src/arch/<arch>/frame.h, the one place
# that knows the layout): the offsets of the resume address and the frame
# pointer from the saved stack pointer, the stack pointer the resumed code
# runs with, and the frame pointer's name.  The command loads those into
# the selected thread's registers, runs gdb's `bt` (which unwinds with the
# DWARF call-frame information, so it works without frame pointers), and
# puts the thread's registers back.  On a core file, where registers cannot
# be written, it walks the frame pointers instead.

import gdb

MAGIC = 0x6d6179636f21
P_PARKED = 1
P_TIMEOUT = 1 << 3
JS_DONE, JS_DETACHED = 1, 2


def _u64(v):
    return int(v) & 0xFFFFFFFFFFFFFFFF


def _frame_layout():
    """(size, pc offset, fp offset, fp register name) of a saved context,
    from the program's may__frame_layout (src/debug.c)."""
    try:
        t = gdb.parse_and_eval("may__frame_layout")
    except gdb.error:
        raise gdb.GdbError("may: symbol may__frame_layout not found (is libmay linked, "
                           "with debug information?)")
    return int(t["size"]), int(t["pc"]), int(t["fp"]), t["fp_reg"].string()


def _read_ptr(addr):
    mem = gdb.selected_inferior().read_memory(addr, 8)
    return int.from_bytes(bytes(mem), "little")



def _co_addr(base, stride, size):
    """Address of the control block of the stack slot at base (src/internal.h
    may__stack_co: the top, lowered by a colour of 0..15 cache lines)."""
    h = ((base >> 12) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    colour = h >> 60
    return (base + stride - size - colour * 64) & ~63

def coroutines():
    """Yield (gdb.Value of struct may_co *) for every live coroutine."""
    try:
        reg = gdb.parse_and_eval("may__regions")
    except gdb.error:
        raise gdb.GdbError("may: symbol may__regions not found (is libmay linked, "
                           "with debug information?)")
    co_type = gdb.lookup_type("struct may_co")
    co_ptr = co_type.pointer()
    size = co_type.sizeof
    inf = gdb.selected_inferior()
    while _u64(reg) != 0:
        first = _u64(reg["first"])
        stride = _u64(reg["stride"])
        for i in range(int(reg["count"])):
            base = first + i * stride
            addr = _co_addr(base, stride, size)
            magic_off = co_type["magic"].bitpos // 8
            try:
                magic = int.from_bytes(bytes(inf.read_memory(addr + magic_off, 8)), "little")
            except gdb.MemoryError:
                continue
            if magic == MAGIC:
                yield gdb.Value(addr).cast(co_ptr)
        reg = reg["next"]


def workers():
    """{coroutine address: worker index} for the coroutines running now."""
    running = {}
    try:
        sched = gdb.parse_and_eval("may__S")
    except gdb.error:
        return running
    # nall: every worker made, spares for blocked threads included
    n = int(sched["nall"])
    ws = sched["workers"]
    if _u64(ws) == 0:
        return running
    for i in range(n):
        w = ws[i]
        if _u64(w) and _u64(w["cur"]):
            running[_u64(w["cur"])] = i
    return running


def _atomic_int(v):
    # _Atomic fields read as plain integers through gdb
    return int(v)


def _wait_text(co):
    what = co["wait_what"]
    text = what.string() if _u64(what) else "?"
    obj = _u64(co["wait_obj"])
    if text.startswith("fd"):
        text += " %d" % obj
    elif obj:
        text += " 0x%x" % obj
    if int(co["park_mask"]) & P_TIMEOUT:
        text += ", with deadline"
    return text


def state(co, running):
    addr = _u64(co)
    js = _atomic_int(co["join_state"])
    if js == JS_DONE:
        return "ended"
    if addr in running:
        return "running"
    if _atomic_int(co["parker"]["word"]) & P_PARKED:
        return "parked: " + _wait_text(co)
    if not int(co["started"]):
        return "runnable, not started"
    return "runnable"


def saved_registers(co):
    """(pc, sp, fp) a switched-out coroutine resumes with."""
    size, pc_off, fp_off, _ = _frame_layout()
    sp = _u64(co["ctx"]["sp"])
    return _read_ptr(sp + pc_off), sp + size, _read_ptr(sp + fp_off)


_libmay_src = []


def _libmay_src_dir():
    """The directory of libmay's sources (src/), where the debug information
    says may__frame_layout is defined (src/debug.c); every file under it,
    src/arch/ included, is libmay's.  None without debug information."""
    if not _libmay_src:
        sym = gdb.lookup_global_symbol("may__frame_layout")
        if sym is None or sym.symtab is None:
            return None
        _libmay_src.append(sym.symtab.fullname().rsplit("/", 1)[0] + "/")
    return _libmay_src[0]


def _in_libmay(pc):
    sal = gdb.find_pc_line(pc)
    if sal.symtab is None:
        return False
    src = _libmay_src_dir()
    if src is None:
        return False
    return sal.symtab.fullname().startswith(src)


def _describe_pc(pc):
    block = None
    try:
        block = gdb.block_for_pc(pc)
    except RuntimeError:
        pass
    name = None
    while block is not None and name is None:
        if block.function is not None:
            name = block.function.print_name
        block = block.superblock
    if name is None:
        sym = gdb.execute("info symbol 0x%x" % pc, to_string=True).strip()
        name = sym.split(" in section")[0] if not sym.startswith("No symbol") else "0x%x" % pc
    sal = gdb.find_pc_line(pc)
    where = ""
    if sal.symtab is not None:
        where = " at %s:%d" % (sal.symtab.filename.rsplit("/", 1)[-1], sal.line)
    return name + where


def fp_chain(co, limit=64):
    """Return addresses of co's frames by walking the frame pointers."""
    pc, sp, fp = saved_registers(co)
    lo, hi = sp, _u64(co)
    pcs = [pc]
    while len(pcs) < limit and lo <= fp <= hi - 16 and fp % 8 == 0:
        ret = _read_ptr(fp + 8)
        if ret == 0:
            break
        pcs.append(ret)
        lo, fp = fp + 16, _read_ptr(fp)
    return pcs


def parked_at(co):
    """The innermost frame outside libmay: where the user's code blocked."""
    for i, pc in enumerate(fp_chain(co)):
        lookup = pc if i == 0 else pc - 1
        if not _in_libmay(lookup):
            return _describe_pc(lookup)
    return "?"


class MayPrefix(gdb.Command):
    """Commands for libmay coroutines: may coroutines, may bt ID|all."""

    def __init__(self):
        super().__init__("may", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)


class MayCoroutines(gdb.Command):
    """List every libmay coroutine: id, name, state, worker, where it is parked."""

    def __init__(self):
        super().__init__("may coroutines", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        running = workers()
        n = 0
        gdb.write("%-8s %-20s %-8s %-40s %s\n" % ("ID", "NAME", "WORKER", "STATE", "WHERE"))
        for co in coroutines():
            n += 1
            st = state(co, running)
            w = running.get(_u64(co))
            if w is None and int(co["pinned"]) >= 0:
                w = int(co["pinned"])
            where = ""
            if st.startswith("parked") or st == "runnable":
                try:
                    where = parked_at(co)
                except gdb.MemoryError:
                    where = "?"
            elif st == "runnable, not started" or st == "running":
                where = "entry " + _describe_pc(_u64(co["fn"]))
            gdb.write("%-8d %-20s %-8s %-40s %s\n" % (
                int(co["id"]), '"%s"' % co["name"].string(), "-" if w is None else str(w),
                st, where))
        gdb.write("%d coroutines\n" % n)


class MayBt(gdb.Command):
    """Backtrace of a switched-out libmay coroutine: may bt ID, or may bt all."""

    def __init__(self):
        super().__init__("may bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        arg = arg.strip()
        if not arg:
            raise gdb.GdbError("usage: may bt ID | may bt all")
        running = workers()
        found = False
        for co in coroutines():
            if arg != "all" and int(co["id"]) != int(arg, 0):
                continue
            found = True
            st = state(co, running)
            gdb.write('coroutine %d "%s" [%s]\n' % (int(co["id"]), co["name"].string(), st))
            if st == "running":
                gdb.write("    (running: see its worker thread's own backtrace)\n")
            elif st in ("ended", "runnable, not started"):
                gdb.write("    (no frames)\n")
            else:
                self.backtrace(co)
        if not found:
            raise gdb.GdbError("may: no coroutine %s" % arg)

    def backtrace(self, co):
        pc, sp, fp = saved_registers(co)
        regs = ("pc", "sp", _frame_layout()[3])
        gdb.newest_frame().select()
        saved = [_u64(gdb.parse_and_eval("$" + r)) for r in regs]
        try:
            for r, v in zip(regs, (pc, sp, fp)):
                gdb.execute("set $%s = %d" % (r, v), to_string=True)
        except gdb.error:
            # a core file: registers are read-only, walk the frame pointers
            for i, p in enumerate(fp_chain(co)):
                gdb.write("#%-3d 0x%016x in %s\n" % (i, p, _describe_pc(p if i == 0 else p - 1)))
            return
        try:
            gdb.write(gdb.execute("bt", to_string=True))
        finally:
            for r, v in zip(regs, saved):
                gdb.execute("set $%s = %d" % (r, v), to_string=True)


MayPrefix()
MayCoroutines()
MayBt()
