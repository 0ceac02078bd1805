"""PE array: accumulates one weight row per kernel tap into a partial-sum bank.

Every lane is one PE: an adder (no multiplier) that adds its sign-extended weight to its
partial sum at the tap's ``out_addr``, for the output channel it owns
(``docs/accelerator.md`` section 3). One tap per cycle, as a three-stage read-modify-write:

* (accept) the tap is transferred; the bank row ``out_addr`` and the weight row
  ``weight_addr`` are read (both memories have synchronous reads);
* ``a_`` accumulate: the rows arrive; ``sum = psum + weight`` lane by lane, registered;
* ``s_`` store: ``sum`` is written back to the bank;
* ``h_`` history: the row stored in the previous cycle, kept for forwarding only.

Hazards. A tap accepted in cycle ``k`` is written at the end of cycle ``k + 2``. The read of
a tap accepted in cycle ``k + 1`` misses that write, and so does the read of a tap accepted
in cycle ``k + 2``, which happens on the same clock edge as the write (the bank's read port
need not be transparent). The accumulate stage therefore takes its partial sum from the
store stage when the addresses match (distance 1), else from the history register
(distance 2, the row written one cycle ago), else from the bank: full throughput with any
address pattern, including the same address every cycle (linear layers, 1x1 convolutions).
Distances are counted in cycles, so bubbles between taps are handled too.

Timing contract (``LATENCY = 3``). ``done`` rises ``LATENCY`` cycles after the cycle the
``end`` marker is transferred in, when all the timestep's rows are in the bank, and stays
high until the next tap or marker is transferred. ``i_stream`` is always ready, so with
``n`` taps and the marker sent back to back from cycle ``0``, ``done`` is first high in
cycle ``n + LATENCY``. ``busy`` is high in every cycle in which a tap or marker is offered
or in the ``a_``/``s_`` stages: ``n + 3`` cycles for that timestep.

The ``h_`` register (``lanes * psum_bits`` flip-flops) exists only because the bank's read
port may return the old row on a write edge; a write-first bank would make it redundant.

Weight packing (``weight_packing=True``, ``rtl/layout.py``). A tap's ``weight_addr`` is one bit
wider than the memory's address. While ``packed`` is low it is the memory row; while it is
high it counts half rows: row ``weight_addr >> 1``, and each lane's weight is the low half
of the lane (``weight_bits // 2`` bits, sign-extended) for an even address, the high half for
an odd one. ``packed`` must be stable while a pass's taps are in the pipeline (the sequencer
holds its segment row).

``taps_per_cycle > 1`` is planned: the bank would be split into ``taps_per_cycle``
interleaved sub-banks (by ``out_addr mod n``), each with its own copy of the
accept/accumulate/store pipeline below (:meth:`PEArray._lane_sums` is already per tap).
Only ``taps_per_cycle = 1`` is built now.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import RowPortSignature, row_layout, tap_layout
from .checks import check_int

__all__ = ["LATENCY", "BUILT_TAPS_PER_CYCLE", "check_taps_per_cycle", "WeightReadSignature",
           "PEArray"]

#: Cycles from the ``end`` marker's transfer to ``done`` (see the module docstring).
LATENCY = 3
#: The taps per cycle the PE array is built for (the multi-tap variant is planned).
BUILT_TAPS_PER_CYCLE = (1,)


def check_taps_per_cycle(taps_per_cycle):
    """Raise ``ValueError`` unless the PE array can be built for ``taps_per_cycle``."""
    if taps_per_cycle not in BUILT_TAPS_PER_CYCLE:
        raise ValueError(f"Taps per cycle must be 1 (the multi-tap variant with "
                         f"interleaved sub-banks is planned), not {taps_per_cycle!r}")


class WeightReadSignature(wiring.Signature):
    """A synchronous read port of the weight memory, seen from the reader.

    ``data`` is valid the cycle after ``en`` (the ``RowPortSignature`` convention).

    Members
    -------
    addr : Out(weight_addr_bits)
    en : Out(1)
    data : In(row_layout(weight_bits, lanes))
    """

    def __init__(self, *, weight_addr_bits, weight_bits, lanes):
        super().__init__({
            "addr": Out(weight_addr_bits), "en": Out(1),
            "data": In(row_layout(weight_bits, lanes)),
        })


class PEArray(wiring.Component):
    """``lanes`` accumulate-only PEs doing one read-modify-write per tap, with forwarding.

    The weight memory is not owned here: the top level owns it (the host loads it) and
    connects its read port to ``weights``. The partial-sum bank is reached through
    ``bank`` (the ping-pong controller's ``fill`` client). ``i_stream`` is always ready.

    Parameters
    ----------
    lanes : int
        Number of PEs (lane ``i`` is output channel ``group * lanes + i``).
    weight_bits : int
        Width of a signed weight.
    psum_bits : int
        Width of a signed partial sum; sums wrap at this width, so the configuration must
        make it wide enough for the layer's worst case (``docs/neuron.md`` section 1).
    addr_bits : int
        Width of a bank address (``out_addr``).
    weight_addr_bits : int
        Width of a weight-memory row address.
    weight_packing : bool
        Taps may address half rows (see the module docstring); needs an even
        ``weight_bits`` of at least 4.
    taps_per_cycle : int
        Kernel taps per PE per cycle. Must be ``1``; the multi-tap variant (interleaved
        sub-banks) is planned.

    Members
    -------
    i_stream : In(stream.Signature(tap_layout(addr_bits, weight_addr_bits + weight_packing)))
        Taps, then ``end``.
    packed : In(1)
        The taps address half rows (only with ``weight_packing``).
    bank : Out(RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes))
        Read-modify-write access to the partial-sum bank being filled.
    weights : Out(WeightReadSignature(weight_addr_bits, weight_bits, lanes))
        Read access to the weight memory.
    busy : Out(1)
        A tap or marker is offered or in the pipeline.
    done : Out(1)
        The last ``end`` has drained: every tap before it is in the bank.

    Raises
    ------
    TypeError
        If a parameter is not a positive integer.
    ValueError
        If ``psum_bits < weight_bits``, or ``taps_per_cycle`` is not 1.
    """

    def __init__(self, *, lanes, weight_bits, psum_bits, addr_bits, weight_addr_bits,
                 weight_packing=False, taps_per_cycle=1):
        check_int(lanes, "Lane count")
        check_int(weight_bits, "Weight width")
        check_int(psum_bits, "Partial-sum width")
        check_int(addr_bits, "Address width")
        check_int(weight_addr_bits, "Weight address width")
        check_int(taps_per_cycle, "Taps per cycle")
        if psum_bits < weight_bits:
            raise ValueError(f"Partial-sum width must be at least the weight width "
                             f"({weight_bits}), not {psum_bits!r}")
        if not isinstance(weight_packing, bool):
            raise TypeError(f"Weight packing must be a bool, not {weight_packing!r}")
        if weight_packing and (weight_bits % 2 or weight_bits < 4):
            raise ValueError(f"Weight packing needs an even weight width of at least 4, not "
                             f"{weight_bits!r}")
        check_taps_per_cycle(taps_per_cycle)
        self._lanes = lanes
        self._weight_bits = weight_bits
        self._psum_bits = psum_bits
        self._addr_bits = addr_bits
        self._weight_addr_bits = weight_addr_bits
        self._taps_per_cycle = taps_per_cycle
        self._weight_packing = weight_packing
        ports = {"packed": In(1)} if weight_packing else {}
        super().__init__({
            "i_stream": In(stream.Signature(tap_layout(
                addr_bits=addr_bits, weight_addr_bits=weight_addr_bits + weight_packing))),
            **ports,
            "bank": Out(RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes)),
            "weights": Out(WeightReadSignature(weight_addr_bits=weight_addr_bits,
                                               weight_bits=weight_bits, lanes=lanes)),
            "busy": Out(1),
            "done": Out(1),
        })

    @property
    def lanes(self):
        return self._lanes

    @property
    def weight_bits(self):
        return self._weight_bits

    @property
    def psum_bits(self):
        return self._psum_bits

    @property
    def addr_bits(self):
        return self._addr_bits

    @property
    def weight_addr_bits(self):
        return self._weight_addr_bits

    @property
    def weight_packing(self):
        return self._weight_packing

    @property
    def taps_per_cycle(self):
        return self._taps_per_cycle

    def _lane_sums(self, m, psum, weight):
        """The PEs of one tap: ``psum[i] + weight[i]`` per lane (a signed add, so the weight
        is sign-extended), wrapped to ``psum_bits``."""
        total = Signal(row_layout(self._psum_bits, self._lanes))
        m.d.comb += [total[i].eq(psum[i] + weight[i]) for i in range(self._lanes)]
        return total

    def elaborate(self, platform):
        m = Module()
        tap = self.i_stream.payload
        row = row_layout(self._psum_bits, self._lanes)
        accept = Signal()
        m.d.comb += [
            self.i_stream.ready.eq(1),
            accept.eq(self.i_stream.valid),
            # Accept: issue both reads straight from the stream (ends read nothing).
            self.bank.r_addr.eq(tap.out_addr),
            self.bank.r_en.eq(accept & ~tap.end),
            self.weights.en.eq(accept & ~tap.end),
        ]
        weight = self.weights.data
        if self._weight_packing:
            # The half row is chosen when the row arrives: the address bit goes along.
            half, a_high = self._weight_bits // 2, Signal()
            m.d.comb += self.weights.addr.eq(Mux(self.packed, tap.weight_addr[1:],
                                                 tap.weight_addr))
            m.d.sync += a_high.eq(tap.weight_addr[0])
            weight = Signal(row_layout(self._weight_bits, self._lanes))
            for lane in range(self._lanes):
                word = self.weights.data[lane].as_unsigned()
                narrow = Mux(a_high, word[half:], word[:half]).as_signed()
                m.d.comb += weight[lane].eq(Mux(self.packed, narrow, self.weights.data[lane]))
        else:
            m.d.comb += self.weights.addr.eq(tap.weight_addr)

        a_valid, a_end = Signal(), Signal()
        a_addr = Signal(self._addr_bits)
        s_valid, s_end = Signal(), Signal()
        s_addr = Signal(self._addr_bits)
        s_sum = Signal(row)
        h_valid = Signal()
        h_addr = Signal(self._addr_bits)
        h_sum = Signal(row)
        m.d.sync += [
            a_valid.eq(accept & ~tap.end), a_end.eq(accept & tap.end), a_addr.eq(tap.out_addr),
        ]

        # a_: forward the newest in-flight row for this address (see the module docstring).
        psum = Signal(row)
        with m.If(s_valid & (s_addr == a_addr)):
            m.d.comb += psum.eq(s_sum)
        with m.Elif(h_valid & (h_addr == a_addr)):
            m.d.comb += psum.eq(h_sum)
        with m.Else():
            m.d.comb += psum.eq(self.bank.r_data)
        total = self._lane_sums(m, psum, weight)
        m.d.sync += [s_valid.eq(a_valid), s_end.eq(a_end), s_addr.eq(a_addr)]
        with m.If(a_valid):
            m.d.sync += s_sum.eq(total)

        # s_: write back; remember the row for one more cycle (the distance-2 hazard).
        m.d.comb += [
            self.bank.w_addr.eq(s_addr),
            self.bank.w_en.eq(s_valid),
            self.bank.w_data.eq(s_sum),
        ]
        m.d.sync += [h_valid.eq(s_valid), h_addr.eq(s_addr), h_sum.eq(s_sum)]

        # done: set after the marker's store cycle (its taps are all written), cleared by
        # the next transfer.
        with m.If(accept):
            m.d.sync += self.done.eq(0)
        with m.Elif(s_end):
            m.d.sync += self.done.eq(1)
        m.d.comb += self.busy.eq(self.i_stream.valid | a_valid | a_end | s_valid | s_end)
        return m
