"""Ping-pong controller: two partial-sum banks shared by a filling and a draining client.

The PE array (``fill``) accumulates timestep ``t + 1`` into one bank while the aggregation
sweep (``drain``) reads and clears timestep ``t`` from the other (``docs/accelerator.md``
section 1). A single select register says which bank is whose; the ``swap`` strobe flips it.
The sequencer pulses ``swap`` when both sides are done with their timestep (the PE array's
``done`` and the aggregation's), so the controller itself holds no schedule.

Checks (``amaranth.hdl.Assert``, evaluated at every clock edge: the Amaranth simulator
raises ``AssertionError``). Exported Verilog carries them as SystemVerilog immediate
``assert`` statements: Yosys reads it with ``read_verilog -sv`` and a synthesis script
removes them with ``chformal -remove; delete t:$print`` after ``proc``. The two checks:

* no bank is accessed (read or written) by both clients in the same cycle. With the routing
  below that cannot happen; the check guards the routing (:meth:`PingPong._routing` is the
  one place a bank is assigned to a client) and any future mode that shares a bank;
* ``swap`` is never pulsed while a side is busy: a swap under a busy client would send the
  rest of its timestep to the other side's bank.

Counters (``counter_bits`` wide, wrapping; ``clear`` zeroes them): cycles with ``fill_busy``,
cycles with ``drain_busy``, and cycles with both (``overlap_cycles``: the time the
ping-pong saves over running the two sides one after the other).

Sliced banks (``slots = 2`` or ``4``, for the position-packed PE array of ``rtl/pe_array.py``):
each bank is ``slots`` memories of ``lanes / slots`` lanes (slice ``j`` holds lanes ``j *
lanes / slots .. (j + 1) * lanes / slots - 1`` of every row), each with its own address and
enables. The ``fill`` client addresses and enables every slice on its own
(``RowPortSignature(slots=slots)``); the ``drain`` client keeps the unsliced port, whose one
address and enable go to every slice of its bank, so that it sees whole rows.
"""

from amaranth.hdl import Assert, Cat, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import RowPortSignature, row_layout
from .checks import check_int

__all__ = ["PingPong", "SLOTS"]

#: The lane slices a bank may be built of (``PingPong(slots=...)``).
SLOTS = (1, 2, 4)


class PingPong(wiring.Component):
    """Two partial-sum banks, a bank select swapped by ``swap``, and the exclusion checks.

    Each bank is a ``memory.Memory`` of ``depth`` rows of ``lanes`` signed ``psum_bits``
    values (zero at reset), with one synchronous read port and one write port. A client's
    ``r_data`` is valid the cycle after its ``r_en``; the data comes from the bank the
    client owned when it issued the read, even across a swap. Reads are not transparent: a
    read on the same edge as a write to that row returns the old row (the PE array forwards
    around this).

    With ``slots > 1`` all of this holds per slice: a bank is ``slots`` such memories of
    ``lanes / slots`` lanes, and slice ``j`` of the fill port (``r_addr[j]``, ``r_en[j]``,
    ``w_addr[j]``, ``w_en[j]``, lanes ``j * lanes / slots ..`` of ``w_data`` and ``r_data``)
    drives slice ``j`` of the fill bank; a fill slice's ``r_data`` comes from the bank the
    client owned when that slice's read was issued. The drain port's one address and enable
    drive every slice of the drain bank: its ``w_data`` is split across the slices and its
    ``r_data`` is their concatenation, so a drain read sees the row as the fill slices wrote
    it. The exclusion check is per bank: no slice of a bank may be accessed by one client in
    a cycle in which any slice of it is accessed by the other.

    Parameters
    ----------
    addr_bits : int
        Width of a row address of the clients.
    psum_bits : int
        Width of one lane of a row.
    lanes : int
        Values per row.
    depth : int
        Rows per bank, at most ``2 ** addr_bits``.
    counter_bits : int
        Width of the busy counters.
    slots : int
        ``1``, ``2`` or ``4`` (default ``1``, the unsliced banks): lane slices per bank, each
        a memory with its own address and enables on the fill side. ``lanes`` must be a
        multiple of it.

    Members
    -------
    fill : In(RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes, slots=slots))
        The filling client (the PE array).
    drain : In(RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes))
        The draining client (the aggregation sweep).
    swap : In(1)
        Strobe: exchange the banks at the end of this cycle.
    fill_busy, drain_busy : In(1)
        The clients' busy flags (for the counters and the swap check).
    clear : In(1)
        Strobe: zero the counters.
    fill_bank, drain_bank : Out(1)
        The bank each client currently owns.
    fill_busy_cycles, drain_busy_cycles, overlap_cycles : Out(counter_bits)
        The busy counters.

    Bank contents (initial values, simulation access): :attr:`banks` with ``slots = 1``;
    :attr:`bank_slices` for any ``slots`` (see there).

    Raises
    ------
    TypeError
        If a parameter is not a positive integer.
    ValueError
        If ``depth`` exceeds ``2 ** addr_bits``, ``slots`` is not 1, 2 or 4, or ``lanes`` is
        not a multiple of ``slots``.
    """

    def __init__(self, *, addr_bits, psum_bits, lanes, depth, counter_bits=32, slots=1):
        check_int(addr_bits, "Address width")
        check_int(psum_bits, "Partial-sum width")
        check_int(lanes, "Lane count")
        check_int(depth, "Depth")
        check_int(counter_bits, "Counter width")
        check_int(slots, "Slot count")
        if depth > 1 << addr_bits:
            raise ValueError(f"Depth must be at most 2 ** addr_bits ({1 << addr_bits}), "
                             f"not {depth!r}")
        if slots not in SLOTS:
            raise ValueError(f"Slot count must be 1, 2 or 4, not {slots!r}")
        if lanes % slots:
            raise ValueError(f"Lane count must be a multiple of the slot count ({slots}), "
                             f"not {lanes!r}")
        self._addr_bits = addr_bits
        self._psum_bits = psum_bits
        self._lanes = lanes
        self._depth = depth
        self._counter_bits = counter_bits
        self._slots = slots
        port = RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes)
        fill_port = port if slots == 1 else RowPortSignature(
            addr_bits=addr_bits, bits=psum_bits, lanes=lanes, slots=slots)
        super().__init__({
            "fill": In(fill_port), "drain": In(port),
            "swap": In(1), "fill_busy": In(1), "drain_busy": In(1), "clear": In(1),
            "fill_bank": Out(1), "drain_bank": Out(1),
            "fill_busy_cycles": Out(counter_bits), "drain_busy_cycles": Out(counter_bits),
            "overlap_cycles": Out(counter_bits),
        })
        # Kept here (not in elaborate) so that tests can preload and peek the banks.
        self._slices = tuple(
            tuple(memory.MemoryData(shape=row_layout(psum_bits, lanes // slots), depth=depth,
                                    init=[]) for _ in range(slots))
            for _ in range(2))

    @property
    def addr_bits(self):
        return self._addr_bits

    @property
    def psum_bits(self):
        return self._psum_bits

    @property
    def lanes(self):
        return self._lanes

    @property
    def depth(self):
        return self._depth

    @property
    def counter_bits(self):
        return self._counter_bits

    @property
    def slots(self):
        return self._slots

    @property
    def banks(self):
        """The two banks (for initial contents and simulation access).

        With ``slots = 1``: bank ``i``'s ``memory.MemoryData`` (rows of ``lanes`` values).
        With ``slots > 1``: bank ``i``'s slices, as :attr:`bank_slices` ``[i]``.
        """
        if self._slots == 1:
            return tuple(slices[0] for slices in self._slices)
        return self._slices

    @property
    def bank_slices(self):
        """The two banks as tuples of ``slots`` slice ``memory.MemoryData``, for any ``slots``.

        ``bank_slices[i][j]`` has ``depth`` rows of ``lanes / slots`` values: row ``r`` of it
        is lanes ``j * lanes / slots .. (j + 1) * lanes / slots - 1`` of bank ``i``'s row
        ``r``. This is what code serving every ``slots`` (the top level's initial contents,
        host or trace access) must use: it sets or reads a whole row ``r`` as the slices' rows
        ``r``, lane slice by lane slice. With ``slots = 1`` it is ``((banks[0],), (banks[1],))``.
        """
        return self._slices

    def _routing(self, m, select):
        """Which bank each client uses this cycle: ``(fill_bank, drain_bank)``.

        The only place a bank is given to a client; the exclusion check below is written
        against whatever this returns.
        """
        return select, ~select

    def elaborate(self, platform):
        m = Module()
        select = Signal()
        with m.If(self.swap):
            m.d.sync += select.eq(~select)
        fill_bank, drain_bank = self._routing(m, select)
        m.d.comb += [self.fill_bank.eq(fill_bank), self.drain_bank.eq(drain_bank)]

        sliced = self._slots > 1
        width = self._lanes // self._slots * self._psum_bits

        # Where each client's last read went (per fill slice), so that its data returns from
        # that bank.
        if not sliced:
            fill_read_banks = [Signal(name="fill_read_bank")]
            fill_read_enables = [self.fill.r_en]
        else:
            fill_read_banks = [Signal(name=f"fill_read_bank{j}") for j in range(self._slots)]
            fill_read_enables = [self.fill.r_en[j] for j in range(self._slots)]
        drain_read_bank = Signal()
        for read_bank, read_enable in zip(fill_read_banks, fill_read_enables):
            with m.If(read_enable):
                m.d.sync += read_bank.eq(fill_bank)
        with m.If(self.drain.r_en):
            m.d.sync += drain_read_bank.eq(drain_bank)

        def part(row, j):
            """Lane slice ``j`` of a whole row (the row itself when unsliced)."""
            return row.as_value()[j * width:(j + 1) * width] if sliced else row

        def ports(client, j, client_sliced):
            """Client's ``(r_addr, r_en, w_addr, w_en, w_data)`` for slice ``j``."""
            if client_sliced:
                return (client.r_addr[j], client.r_en[j], client.w_addr[j], client.w_en[j],
                        part(client.w_data, j))
            return client.r_addr, client.r_en, client.w_addr, client.w_en, part(client.w_data, j)

        if sliced:
            fill_access = self.fill.r_en.any() | self.fill.w_en.any()
        else:
            fill_access = self.fill.r_en | self.fill.w_en
        drain_access = self.drain.r_en | self.drain.w_en
        read_data = []  # read_data[bank][slice]
        for index, slices in enumerate(self._slices):
            fill_here = fill_bank == index
            drain_here = drain_bank == index
            bank_read_data = []
            for j, slice_data in enumerate(slices):
                name = f"bank{index}_slice{j}" if sliced else f"bank{index}"
                m.submodules[name] = bank = memory.Memory(data=slice_data)
                write = bank.write_port()
                read = bank.read_port()
                m.d.comb += read.en.eq(0)  # its init is 1: an unowned bank must not read
                # The fill client wins a (forbidden) shared bank; the assertion reports it.
                for (r_addr, r_en, w_addr, w_en, w_data), here in (
                        (ports(self.fill, j, sliced), fill_here),
                        (ports(self.drain, j, False), drain_here & ~fill_here)):
                    with m.If(here):
                        m.d.comb += [
                            read.addr.eq(r_addr), read.en.eq(r_en),
                            write.addr.eq(w_addr), write.en.eq(w_en),
                            write.data.eq(w_data),
                        ]
                bank_read_data.append(read.data)
            m.d.sync += Assert(~(fill_here & drain_here & fill_access & drain_access),
                               f"both ping-pong clients access bank {index} in one cycle")
            read_data.append(bank_read_data)
        for j, read_bank in enumerate(fill_read_banks):
            with m.If(read_bank):
                m.d.comb += part(self.fill.r_data, j).eq(read_data[1][j])
            with m.Else():
                m.d.comb += part(self.fill.r_data, j).eq(read_data[0][j])
        drain_rows = [Cat(*slices) if sliced else slices[0] for slices in read_data]
        with m.If(drain_read_bank):
            m.d.comb += self.drain.r_data.eq(drain_rows[1])
        with m.Else():
            m.d.comb += self.drain.r_data.eq(drain_rows[0])

        m.d.sync += Assert(~(self.swap & (self.fill_busy | self.drain_busy)),
                           "ping-pong swap while a client is busy")
        counters = ((self.fill_busy_cycles, self.fill_busy),
                    (self.drain_busy_cycles, self.drain_busy),
                    (self.overlap_cycles, self.fill_busy & self.drain_busy))
        for counter, condition in counters:
            with m.If(self.clear):
                m.d.sync += counter.eq(0)
            with m.Elif(condition):
                m.d.sync += counter.eq(counter + 1)
        return m
