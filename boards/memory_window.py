"""The ``MEM_*`` registers: row-at-a-time access to the accelerator's memories, 32 bits at a time.

A cursor (memory ``select``, row ``addr``, word index) walks the rows. Writing a word stores it
in a staging row at the word index; the word that completes the row (word
``row_words(bits) - 1``, :func:`~.regmap.row_words`) makes the next cycle write the staging
row to the host memory port and moves the cursor to word 0 of the next row. Reading a word
reads the cursor's row through the host read port (one cycle, once the shell grants the
port), returns word ``index`` of it and moves the cursor on the same way. Setting the select
or the address puts the cursor at word 0.

A write to a memory that is not host-written, or a read of one that is not host-read,
does nothing except raise ``error`` for one cycle (reads return 0).
"""

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..rtl.host_port import host_signature
from .regmap import row_words

__all__ = ["MemoryWindow"]


class MemoryWindow(wiring.Component):
    """Cursor, staging row and word access for the host memory port.

    Parameters
    ----------
    write_bits : dict of int -> int
        Row width of each host-written memory, by memory number.
    read_bits : dict of int -> int
        Row width of each host-read memory, by memory number.
    addr_bits, w_data_bits, r_data_bits : int
        Widths of the host port (``rtl/host_port.py``): the address, the written word (at
        least every ``write_bits``) and the read word (at least every ``read_bits``).

    Members
    -------
    value : In(32)
        The value of a ``set_select``, ``set_addr`` or ``write_word`` strobe.
    set_select, set_addr, write_word, read_word : In(1)
        One-cycle strobes.
    select : Out(3)
    addr : Out(addr_bits)
        The cursor's row.
    read_data : Out(32)
    read_valid : Out(1)
        One cycle, some cycles after ``read_word``.
    error : Out(1)
        One cycle: an access to a memory that does not allow it.
    r_grant : In(1)
        The shell lets the window use the host read port in this cycle.
    host : Out(host_signature(...))
        Drives the host port (the shell gives the read side to it only when granted).
    """

    def __init__(self, *, write_bits, read_bits, addr_bits, w_data_bits, r_data_bits):
        for name, table, limit in (("write_bits", write_bits, w_data_bits),
                                   ("read_bits", read_bits, r_data_bits)):
            if not isinstance(table, dict) or not table or not all(
                    isinstance(k, int) and isinstance(v, int) and 0 < v <= limit
                    for k, v in table.items()):
                raise TypeError(f"{name} must be a non-empty dict of memory number -> row "
                                f"width (1..{limit}), not {table!r}")
        self._write_bits, self._read_bits = dict(write_bits), dict(read_bits)
        self._w_data_bits, self._r_data_bits = w_data_bits, r_data_bits
        super().__init__({
            "value": In(32),
            "set_select": In(1), "set_addr": In(1), "write_word": In(1), "read_word": In(1),
            "select": Out(3), "addr": Out(addr_bits),
            "read_data": Out(32), "read_valid": Out(1), "error": Out(1),
            "r_grant": In(1),
            "host": Out(host_signature(addr_bits=addr_bits, w_data_bits=w_data_bits,
                                       r_data_bits=r_data_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        host = self.host
        w_slots, r_slots = row_words(self._w_data_bits), row_words(self._r_data_bits)
        slots = max(w_slots, r_slots)
        staging = Array(Signal(32, name=f"staging{i}") for i in range(w_slots))
        index = Signal(range(slots))

        def last_word(table):
            # Index of the last word of the selected memory's row; -1 when not in the table.
            value = Signal(range(-1, slots), name=f"last_{len(table)}_{min(table)}")
            m.d.comb += value.eq(-1)
            with m.Switch(self.select):
                for number, bits in table.items():
                    with m.Case(number):
                        m.d.comb += value.eq(row_words(bits) - 1)
            return value

        write_last, read_last = last_word(self._write_bits), last_word(self._read_bits)

        def advance(last):
            with m.If(index == last):
                m.d.sync += [index.eq(0), self.addr.eq(self.addr + 1)]
            with m.Else():
                m.d.sync += index.eq(index + 1)

        # ---- writes: stage the word; the row's last word commits it in the next cycle.
        commit = Signal()
        m.d.sync += commit.eq(0)
        commit_sel = Signal.like(self.select)
        m.d.comb += [host.w_sel.eq(commit_sel), host.w_en.eq(commit)]
        staged = Signal(w_slots * 32)
        for i in range(w_slots):
            m.d.comb += staged[32 * i:32 * (i + 1)].eq(staging[i])
        m.d.comb += host.w_data.eq(staged[:self._w_data_bits])
        commit_addr = Signal.like(self.addr)
        m.d.comb += host.w_addr.eq(commit_addr)
        with m.If(self.write_word):
            with m.If(write_last < 0):
                m.d.comb += self.error.eq(1)
            with m.Else():
                m.d.sync += staging[index].eq(self.value)
                with m.If(index == write_last):
                    m.d.sync += [commit.eq(1), commit_addr.eq(self.addr),
                                 commit_sel.eq(self.select)]
                advance(write_last)

        # ---- reads: wait for the grant, read the row, pick the word.
        pending = Signal()
        arrived = Signal()
        word = Signal(range(r_slots))
        m.d.sync += arrived.eq(0)
        m.d.comb += [host.r_sel.eq(self.select), host.r_addr.eq(self.addr),
                     host.r_en.eq(pending & self.r_grant)]
        m.d.sync += self.read_valid.eq(0)
        with m.If(self.read_word):
            with m.If(read_last < 0):
                m.d.comb += self.error.eq(1)
                m.d.sync += [self.read_valid.eq(1), self.read_data.eq(0)]
            with m.Else():
                m.d.sync += pending.eq(1)
        with m.If(host.r_en):
            m.d.sync += [pending.eq(0), arrived.eq(1), word.eq(index)]
            advance(read_last)
        row = Signal(r_slots * 32)
        m.d.comb += row.eq(host.r_data)
        words = Array(row[32 * i:32 * (i + 1)] for i in range(r_slots))
        with m.If(arrived):
            m.d.sync += [self.read_valid.eq(1), self.read_data.eq(words[word])]

        # ---- cursor
        with m.If(self.set_select):
            m.d.sync += [self.select.eq(self.value), index.eq(0)]
        with m.If(self.set_addr):
            m.d.sync += [self.addr.eq(self.value), index.eq(0)]
        return m
