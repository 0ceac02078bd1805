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
"""

from amaranth.hdl import Assert, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import RowPortSignature, row_layout
from .checks import check_int

__all__ = ["PingPong"]


class PingPong(wiring.Component):
    """Two partial-sum banks, a bank select swapped by ``swap``, and the exclusion checks.

    Each bank is a ``memory.Memory`` of ``depth`` rows of ``lanes`` signed ``psum_bits``
    values (zero at reset), with one synchronous read port and one write port. A client's
    ``r_data`` is valid the cycle after its ``r_en``; the data comes from the bank the
    client owned when it issued the read, even across a swap. Reads are not transparent: a
    read on the same edge as a write to that row returns the old row (the PE array forwards
    around this).

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

    Members
    -------
    fill : In(RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes))
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

    Raises
    ------
    TypeError
        If a parameter is not a positive integer.
    ValueError
        If ``depth`` exceeds ``2 ** addr_bits``.
    """

    def __init__(self, *, addr_bits, psum_bits, lanes, depth, counter_bits=32):
        check_int(addr_bits, "Address width")
        check_int(psum_bits, "Partial-sum width")
        check_int(lanes, "Lane count")
        check_int(depth, "Depth")
        check_int(counter_bits, "Counter width")
        if depth > 1 << addr_bits:
            raise ValueError(f"Depth must be at most 2 ** addr_bits ({1 << addr_bits}), "
                             f"not {depth!r}")
        self._addr_bits = addr_bits
        self._psum_bits = psum_bits
        self._lanes = lanes
        self._depth = depth
        self._counter_bits = counter_bits
        port = RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes)
        super().__init__({
            "fill": In(port), "drain": In(port),
            "swap": In(1), "fill_busy": In(1), "drain_busy": In(1), "clear": In(1),
            "fill_bank": Out(1), "drain_bank": Out(1),
            "fill_busy_cycles": Out(counter_bits), "drain_busy_cycles": Out(counter_bits),
            "overlap_cycles": Out(counter_bits),
        })
        # Kept here (not in elaborate) so that tests can preload and peek the banks.
        self._banks = tuple(memory.MemoryData(shape=row_layout(psum_bits, lanes), depth=depth,
                                              init=[]) for _ in range(2))

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
    def banks(self):
        """The two banks' ``memory.MemoryData`` (for simulation access)."""
        return self._banks

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

        # Where each client's last read went, so that its data returns from that bank.
        fill_read_bank, drain_read_bank = Signal(), Signal()
        with m.If(self.fill.r_en):
            m.d.sync += fill_read_bank.eq(fill_bank)
        with m.If(self.drain.r_en):
            m.d.sync += drain_read_bank.eq(drain_bank)

        fill_access = self.fill.r_en | self.fill.w_en
        drain_access = self.drain.r_en | self.drain.w_en
        read_data = []
        for index, bank_data in enumerate(self._banks):
            m.submodules[f"bank{index}"] = bank = memory.Memory(data=bank_data)
            write = bank.write_port()
            read = bank.read_port()
            fill_here = fill_bank == index
            drain_here = drain_bank == index
            m.d.comb += read.en.eq(0)  # its init is 1: an unowned bank must not read
            # The fill client wins a (forbidden) shared bank; the assertion reports it.
            for client, here in ((self.fill, fill_here), (self.drain, drain_here & ~fill_here)):
                with m.If(here):
                    m.d.comb += [
                        read.addr.eq(client.r_addr), read.en.eq(client.r_en),
                        write.addr.eq(client.w_addr), write.en.eq(client.w_en),
                        write.data.eq(client.w_data),
                    ]
            m.d.sync += Assert(~(fill_here & drain_here & fill_access & drain_access),
                               f"both ping-pong clients access bank {index} in one cycle")
            read_data.append(read.data)
        with m.If(fill_read_bank):
            m.d.comb += self.fill.r_data.eq(read_data[1])
        with m.Else():
            m.d.comb += self.fill.r_data.eq(read_data[0])
        with m.If(drain_read_bank):
            m.d.comb += self.drain.r_data.eq(read_data[1])
        with m.Else():
            m.d.comb += self.drain.r_data.eq(read_data[0])

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
