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

Position packing (``max_pack = 1`` or ``2``, ``rtl/tap_generator.py``). A layer with few
output channels leaves lanes idle; packed, bank row ``r`` holds the ``P = 2**pack`` positions
``P * r .. P * r + P - 1`` (``pack`` is an input, ``0 .. max_pack``, stable while a layer's
items are in flight, like ``packed``). With ``C = lanes / P``, position ``P * r + s`` lives in
slot ``s``: lanes ``s * C .. s * C + C - 1``. The bank is four quarters of ``lanes / 4`` lanes,
each a memory with its own address and enables (``RowPortSignature(slots=4)``); slot ``s`` is
quarters ``s * 4 / P .. (s + 1) * 4 / P - 1``, so quarter ``u`` is in slot ``u >> (2 - pack)``.
An item (``out_addr`` = ``low``, ``count`` = ``1 .. P``, ``rotate``, ``weight_addr``) adds,
for each ``i < count``, to position ``p = low + i`` weight slot ``(p mod P - rotate) mod P``
of its weight row. Per quarter ``u`` of slot ``s``:

* enabled iff ``(s - low) mod P < count`` (a disabled quarter neither reads nor writes);
* its row is ``(low >> pack) + 1`` if ``s < low mod P`` (the item runs into the next row),
  else ``low >> pack``;
* it adds weight quarter ``(u - rotate * 4 / P) mod 4`` (after the half-row choice of weight
  packing; the rotation is two stages of 2:1 multiplexers, one with ``max_pack = 1``).

Each quarter is its own read-modify-write pipeline sharing the stages' valid bits: the
forwarding above compares each quarter's address and enable in ``s_`` and ``h_`` with its
own in ``a_``, so two items that share a row in one quarter only (an item spanning two rows
next to one inside one) see each other's sums there and nothing elsewhere. This costs four
addresses per stage instead of one and eight address compares instead of two; the
multiplexers in front of the adders keep their size (three inputs a lane, selected per
quarter), and so does ``h_``. The rotation adds its multiplexer stages between the weight
memory and the adders. ``pack = 0`` (and any ``pack`` above ``max_pack``) puts all quarters
at ``out_addr``, enabled, unrotated: the unpacked array (``count`` and ``rotate`` ignored).
Timing, ``LATENCY`` and ``done``/``busy`` are as unpacked: one item per cycle. ``max_pack =
0`` builds the unpacked array exactly (no ``pack`` input, an unsliced bank port, taps
without ``count``/``rotate``).

``taps_per_cycle > 1`` is planned: the bank would be split into ``taps_per_cycle``
interleaved sub-banks (by ``out_addr mod n``), each with its own copy of the
accept/accumulate/store pipeline below (:meth:`PEArray._lane_sums` is already per tap).
Only ``taps_per_cycle = 1`` is built now.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import MAX_PACK, RowPortSignature, row_layout, tap_layout
from .checks import check_int

__all__ = ["LATENCY", "BUILT_TAPS_PER_CYCLE", "QUARTERS", "check_taps_per_cycle",
           "WeightReadSignature", "PEArray"]

#: Cycles from the ``end`` marker's transfer to ``done`` (see the module docstring).
LATENCY = 3
#: The taps per cycle the PE array is built for (the multi-tap variant is planned).
BUILT_TAPS_PER_CYCLE = (1,)
#: Lane slices of a position-packed bank row, each with its own address and enables: enough
#: for ``2**MAX_PACK`` positions per row.
QUARTERS = 1 << MAX_PACK


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
    With ``max_pack > 0`` an item updates up to ``2**pack`` positions of one or two bank rows
    at once, each quarter of the lanes at its own row (position packing, module docstring).

    Parameters
    ----------
    lanes : int
        Number of PEs (lane ``i`` is output channel ``group * lanes + i``; packed, lane
        ``s * lanes / P + i`` is channel ``i`` of the row's position in slot ``s``).
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
    max_pack : int
        ``0 .. MAX_PACK`` (default ``0``): the largest ``pack`` a layer may use. ``0`` builds
        the unpacked array; ``1`` or ``2`` adds the ``pack`` input, ``count``/``rotate`` in
        the items and a bank port of four quarters; needs ``lanes`` a multiple of 4.

    Members
    -------
    i_stream : In(stream.Signature(tap_layout(addr_bits, weight_addr_bits + weight_packing, ...)))
        Taps, then ``end``; ``tap_layout(..., max_pack=max_pack)``, so packed items also
        carry ``count`` and ``rotate``.
    packed : In(1)
        The taps address half rows (only with ``weight_packing``).
    pack : In(2)
        ``log2`` of the positions per bank row, ``0 .. max_pack`` (only with ``max_pack >
        0``); stable while a layer's items are in the pipeline.
    bank : Out(RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes))
        Read-modify-write access to the partial-sum bank being filled. With ``max_pack > 0``
        ``RowPortSignature(..., slots=4)``: quarter ``u`` (lanes ``u * lanes / 4 ..``) has
        its own ``r_addr[u]``/``w_addr[u]`` and ``r_en[u]``/``w_en[u]``, and is read and
        written only for the items that touch it.
    weights : Out(WeightReadSignature(weight_addr_bits, weight_bits, lanes))
        Read access to the weight memory.
    busy : Out(1)
        A tap or marker is offered or in the pipeline.
    done : Out(1)
        The last ``end`` has drained: every tap before it is in the bank.

    Raises
    ------
    TypeError
        If a parameter is not a positive integer, or ``max_pack`` not an integer in 0..2.
    ValueError
        If ``psum_bits < weight_bits``, ``taps_per_cycle`` is not 1, or ``max_pack > 0`` and
        ``lanes`` is not a multiple of 4.
    """

    def __init__(self, *, lanes, weight_bits, psum_bits, addr_bits, weight_addr_bits,
                 weight_packing=False, taps_per_cycle=1, max_pack=0):
        check_int(lanes, "Lane count")
        check_int(weight_bits, "Weight width")
        check_int(psum_bits, "Partial-sum width")
        check_int(addr_bits, "Address width")
        check_int(weight_addr_bits, "Weight address width")
        check_int(taps_per_cycle, "Taps per cycle")
        check_int(max_pack, "Maximum pack", low=0, high=MAX_PACK)
        if psum_bits < weight_bits:
            raise ValueError(f"Partial-sum width must be at least the weight width "
                             f"({weight_bits}), not {psum_bits!r}")
        if not isinstance(weight_packing, bool):
            raise TypeError(f"Weight packing must be a bool, not {weight_packing!r}")
        if weight_packing and (weight_bits % 2 or weight_bits < 4):
            raise ValueError(f"Weight packing needs an even weight width of at least 4, not "
                             f"{weight_bits!r}")
        check_taps_per_cycle(taps_per_cycle)
        if max_pack and lanes % QUARTERS:
            raise ValueError(f"Position packing needs a lane count that is a multiple of "
                             f"{QUARTERS}, not {lanes!r}")
        self._lanes = lanes
        self._weight_bits = weight_bits
        self._psum_bits = psum_bits
        self._addr_bits = addr_bits
        self._weight_addr_bits = weight_addr_bits
        self._taps_per_cycle = taps_per_cycle
        self._weight_packing = weight_packing
        self._max_pack = max_pack
        ports = {"packed": In(1)} if weight_packing else {}
        if max_pack:
            ports["pack"] = In(2)
        super().__init__({
            "i_stream": In(stream.Signature(tap_layout(
                addr_bits=addr_bits, weight_addr_bits=weight_addr_bits + weight_packing,
                max_pack=max_pack))),
            **ports,
            "bank": Out(RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes,
                                         slots=QUARTERS if max_pack else 1)),
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

    @property
    def max_pack(self):
        return self._max_pack

    def _lane_sums(self, m, psum, weight):
        """The PEs of one tap: ``psum[i] + weight[i]`` per lane (a signed add, so the weight
        is sign-extended), wrapped to ``psum_bits``."""
        total = Signal(row_layout(self._psum_bits, self._lanes))
        m.d.comb += [total[i].eq(psum[i] + weight[i]) for i in range(self._lanes)]
        return total

    def _placement(self, m, tap):
        """Where the item on the stream lands, per quarter (the module docstring's rules):
        ``(rows, enables, rotation)``, its bank row per quarter, which quarters it touches
        (``Signal(4)``) and the weight rotation in quarters (``Signal(2)``)."""
        rows = [Signal(self._addr_bits, name=f"place_row{u}") for u in range(QUARTERS)]
        enables = Signal(QUARTERS)
        rotation = Signal(2)
        # Every quarter's row is the item's first row or the next one: one incrementer for all.
        first, following = Signal(self._addr_bits), Signal(self._addr_bits)
        carry = Signal(QUARTERS)
        with m.Switch(self.pack):
            for pack in range(1, self._max_pack + 1):
                with m.Case(pack):
                    low = tap.out_addr[:pack]
                    m.d.comb += [first.eq(tap.out_addr >> pack),
                                 rotation.eq(tap.rotate[:pack] << (2 - pack))]
                    for u in range(QUARTERS):
                        slot = u >> (2 - pack)
                        m.d.comb += [enables[u].eq((slot - low)[:pack] < tap.count),
                                     carry[u].eq(low > slot)]
            with m.Default():  # pack 0 (or out of range): the unpacked array
                m.d.comb += [first.eq(tap.out_addr), enables.eq(-1)]
        m.d.comb += following.eq(first + 1)
        m.d.comb += [rows[u].eq(Mux(carry[u], following, first)) for u in range(QUARTERS)]
        return rows, enables, rotation

    def _rotate(self, m, weight, rotation):
        """``weight`` with output quarter ``u`` taking quarter ``(u - rotation) mod 4``: one
        2:1 multiplexer stage per rotation bit that a pack up to ``max_pack`` can set."""
        quarter = self._lanes // QUARTERS
        for bit in range(2 - self._max_pack, 2):
            shift = quarter << bit
            rotated = Signal(row_layout(self._weight_bits, self._lanes), name=f"rotated{bit}")
            m.d.comb += [rotated[lane].eq(Mux(rotation[bit], weight[(lane - shift) % self._lanes],
                                              weight[lane]))
                         for lane in range(self._lanes)]
            weight = rotated
        return weight

    def elaborate(self, platform):
        m = Module()
        tap = self.i_stream.payload
        row = row_layout(self._psum_bits, self._lanes)
        # Unpacked, the row is one slice; packed, each quarter is a pipeline of its own (with
        # its own address and enable in every stage) sharing the stages' valid bits.
        slices = QUARTERS if self._max_pack else 1
        width = self._lanes // slices * self._psum_bits

        def part(value, j):
            """Slice ``j`` of a row (the whole row when unpacked)."""
            return value if slices == 1 else value.as_value()[j * width:(j + 1) * width]

        def names(stem):
            return [stem] if slices == 1 else [f"{stem}{j}" for j in range(slices)]

        accept = Signal()
        m.d.comb += [
            self.i_stream.ready.eq(1),
            accept.eq(self.i_stream.valid),
        ]
        if self._max_pack:
            # Accept: each quarter reads its own row, and only if the item touches it.
            place_rows, place_enables, rotation = self._placement(m, tap)
            m.d.comb += [self.bank.r_addr[j].eq(place_rows[j]) for j in range(slices)]
            m.d.comb += [
                self.bank.r_en.eq(Mux(accept & ~tap.end, place_enables, 0)),
                self.weights.en.eq(accept & ~tap.end),
            ]
        else:
            place_rows = [tap.out_addr]
            m.d.comb += [
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
        a_addr = [Signal(self._addr_bits, name=n) for n in names("a_addr")]
        s_valid, s_end = Signal(), Signal()
        s_addr = [Signal(self._addr_bits, name=n) for n in names("s_addr")]
        s_sum = Signal(row)
        h_valid = Signal()
        h_addr = [Signal(self._addr_bits, name=n) for n in names("h_addr")]
        h_sum = Signal(row)
        m.d.sync += [
            a_valid.eq(accept & ~tap.end), a_end.eq(accept & tap.end),
            *(a_addr[j].eq(place_rows[j]) for j in range(slices)),
        ]
        if self._max_pack:
            # A quarter's enable in a stage: an item is there and touches that quarter.
            a_on, s_on, h_on = Signal(slices), Signal(slices), Signal(slices)
            a_rotation = Signal(2)
            m.d.sync += [a_on.eq(Mux(accept & ~tap.end, place_enables, 0)),
                         a_rotation.eq(rotation)]
            # The half row first (per lane), then the slots move to their positions.
            weight = self._rotate(m, weight, a_rotation)
        else:
            a_on, s_on, h_on = [a_valid], [s_valid], [h_valid]

        # a_: forward the newest in-flight row for this address (see the module docstring),
        # slice by slice: a slice's older writes are its own.
        psum = Signal(row)
        for j in range(slices):
            with m.If(s_on[j] & (s_addr[j] == a_addr[j])):
                m.d.comb += part(psum, j).eq(part(s_sum, j))
            with m.Elif(h_on[j] & (h_addr[j] == a_addr[j])):
                m.d.comb += part(psum, j).eq(part(h_sum, j))
            with m.Else():
                m.d.comb += part(psum, j).eq(part(self.bank.r_data, j))
        total = self._lane_sums(m, psum, weight)
        m.d.sync += [s_valid.eq(a_valid), s_end.eq(a_end),
                     *(s_addr[j].eq(a_addr[j]) for j in range(slices))]
        if self._max_pack:
            m.d.sync += s_on.eq(a_on)
        for j in range(slices):
            # A slice the item does not touch is neither written nor forwarded: keep it still.
            with m.If(a_on[j]):
                m.d.sync += part(s_sum, j).eq(part(total, j))

        # s_: write back; remember the row for one more cycle (the distance-2 hazard).
        if self._max_pack:
            m.d.comb += [self.bank.w_addr[j].eq(s_addr[j]) for j in range(slices)]
            m.d.comb += [self.bank.w_en.eq(s_on), self.bank.w_data.eq(s_sum)]
            m.d.sync += h_on.eq(s_on)
        else:
            m.d.comb += [
                self.bank.w_addr.eq(s_addr[0]),
                self.bank.w_en.eq(s_valid),
                self.bank.w_data.eq(s_sum),
            ]
        m.d.sync += [h_valid.eq(s_valid), *(h_addr[j].eq(s_addr[j]) for j in range(slices)),
                     h_sum.eq(s_sum)]

        # done: set after the marker's store cycle (its taps are all written), cleared by
        # the next transfer.
        with m.If(accept):
            m.d.sync += self.done.eq(0)
        with m.Elif(s_end):
            m.d.sync += self.done.eq(1)
        m.d.comb += self.busy.eq(self.i_stream.valid | a_valid | a_end | s_valid | s_end)
        return m
