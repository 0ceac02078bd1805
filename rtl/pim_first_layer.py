"""Digital processing-in-memory first layer: a direct-encoded layer's current, bit-serially.

A drop-in replacement for :class:`~.reference_mac.ReferenceMAC` (same ports, same contract:
one channel group, bias included, bank row ``p`` written once per output position ``p``;
``AcceleratorConfig(first_layer="pim")`` selects it). No multiplier anywhere, so it maps to
LUTs and carry chains, not DSP48 slices.

Arithmetic. For one output position the current of lane ``i`` is
``bias[i] + sum over in-range taps t of pixel_t * W_t[i]`` with unsigned ``input_bits``-bit
pixels and signed ``weight_bits``-bit weights. Write ``pixel_t = sum_b x_t[b] * 2**b``
(bit-plane ``b`` of the input). Then::

    sum_t pixel_t * W_t[i] = sum_b 2**b * (sum_t (x_t[b] AND W_t[i]))

where ``x AND W`` gates the whole two's-complement weight by one input bit (``W`` or 0). The
block applies one bit-plane per cycle, most significant first, to a *chunk* of up to ``rows``
taps (the weight rows read from BRAM, the PIM array's rows): an adder tree per lane reduces
the ``rows`` gated weights (sign-extended, so negative weights are exact) and Horner's rule
``acc = 2 * acc + plane_sum`` does the shift-accumulate. After ``input_bits`` planes ``acc``
is the chunk's exact sum; chunks of a position are added to the bias in a last stage.
``columns`` lanes are reduced per cycle: with ``columns < lanes`` every plane takes
``lanes // columns`` cycles (column multiplexing: fewer adder trees, more cycles).

Stages (prefixes of the signals that belong to them):

* ``c_``, ``p_``, ``q_``, ``w_`` the window walker the reference MAC uses too
  (``rtl/window_walker.py``): layer constants, output positions, in-range tap counts and
  first addresses, and one pixel read and one weight read per issued tap (``c``, ``ky``,
  ``kx`` ascending). Here its products of geometry fields are shift-and-add
  (``shift_add=True``), so no address multiplier maps to a DSP either;
* ``r_`` the read data of the tap issued in the previous cycle goes into slot ``r_slot`` of
  the fill buffer ``f_``; the tap that fills slot ``rows - 1``, or a position's last tap,
  closes the chunk;
* ``e_`` the bit-serial engine: a closed chunk is copied from ``f_`` to ``e_`` (the
  *handover*, at the earliest the cycle after the chunk closed) when the engine is idle or
  in its last cycle, and is computed in ``P * B`` cycles (``P = lanes // columns``,
  ``B = input_bits``) while the walker fills the next chunk into ``f_``;
* ``a_`` add the chunk to the position's sum (the bias on the first chunk); the position's
  last chunk writes the bank row.

The walker issues the first tap of a chunk in cycle ``t`` only if ``f_`` is free by the end of
cycle ``t + 1``, when that tap's data is written (the handover and that write may share a
clock edge: ``e_`` takes the old contents); inside a chunk it never waits. Every position must
have at least one in-range tap (``in_channels >= 1``; with padding below the kernel size every
window overlaps the image).

Cycle cost (:func:`pim_run_cycles`; the cycle model relies on it). Count the cycle that
samples ``start`` as ``0``. Number the chunks of all positions ``j = 0, 1, ...`` in order,
``s_j`` taps each. The first tap of chunk 0 is issued in cycle ``t_0 = 3``; chunk ``j``
closes (its last data arrives) in cycle ``c_j = t_j + s_j``, is handed over at the end of
cycle ``h_j = max(c_j + 1, h_{j-1} + P * B)`` (``h_{-1} = -infinity``), and the next chunk
starts in ``t_{j+1} = h_j - 1``. ``done`` is high in cycle ``h_last + P * B + 2``: a run takes
``h_last + P * B + 3`` cycles. In steady state a chunk costs ``max(s_j, P * B)`` cycles:
with ``rows >= P * B`` and full windows the block reads one tap per cycle, like the
reference MAC.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.utils import ceil_log2

from .first_layer import FirstLayerBlock, FirstLayerSignature
from .interfaces import row_layout
from .checks import check_int
from .window_walker import axis_taps

__all__ = ["PIMFirstLayer", "pim_run_cycles", "pim_chunks"]

#: Cycle of the first tap issue after ``start`` (``p_``, ``q_``, ``w_`` fill up).
FIRST_ISSUE = 3


def _tree(values):
    """Sum ``values`` as a balanced adder tree (shorter paths than a chain)."""
    values = list(values)
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def pim_chunks(geometry, in_channels, rows):
    """Chunk sizes (taps) of one run, in order: positions in raster order, ``rows`` taps per
    chunk. ``geometry`` is a dict with the fields of ``geometry_layout``."""
    g = geometry
    if g["linear"]:
        windows = [in_channels * g["in_h"] * g["in_w"]]
    else:
        ys = axis_taps(g["out_h"], g["kernel_h"], g["stride_h"], g["pad_h"], g["in_h"])
        xs = axis_taps(g["out_w"], g["kernel_w"], g["stride_w"], g["pad_w"], g["in_w"])
        windows = [in_channels * ny * nx for ny in ys for nx in xs]
    chunks = []
    for taps in windows:
        if taps < 1:
            raise ValueError(f"an output position has {taps} in-range taps; the PIM block "
                             f"needs at least 1")
        chunks.extend([rows] * (taps // rows) + ([taps % rows] if taps % rows else []))
    return chunks


def pim_run_cycles(geometry, in_channels, *, rows, input_bits, column_passes=1):
    """Exact cycles of one run, from the ``start`` cycle to the ``done`` cycle inclusive
    (the recurrence of the module docstring)."""
    compute = column_passes * input_bits
    handover = None
    start = FIRST_ISSUE
    for size in pim_chunks(geometry, in_channels, rows):
        close = start + size
        handover = close + 1 if handover is None else max(close + 1, handover + compute)
        start = handover - 1
    return handover + compute + 3


class PIMFirstLayer(FirstLayerBlock):
    """Bit-serial, multiplier-free first-layer current of one channel group into a bank.

    The ports and their contract are :class:`~.first_layer.FirstLayerSignature`'s, as for
    :class:`~.reference_mac.ReferenceMAC`; only the cycle cost differs
    (:func:`pim_run_cycles`).

    Parameters
    ----------
    lanes, input_bits, weight_bits, psum_bits, addr_bits, pixel_addr_bits, weight_addr_bits,
    coord_bits, channel_bits : int
        As for :class:`~.first_layer.FirstLayerSignature`.
    rows : int
        Taps (weight rows) reduced in parallel: the adder tree's inputs per lane.
    columns : int or None
        Lanes reduced per cycle; must divide ``lanes``. ``None`` (the default) is ``lanes``.

    Members
    -------
    geometry, in_channels, bias, pixels, weights, bank, start, busy, done
        As for :class:`~.first_layer.FirstLayerSignature`.

    Raises
    ------
    TypeError
        If a parameter is not a positive integer.
    ValueError
        If ``psum_bits < weight_bits`` or ``columns`` does not divide ``lanes``.
    """

    def __init__(self, *, lanes, input_bits, weight_bits, psum_bits, addr_bits,
                 pixel_addr_bits, weight_addr_bits, coord_bits, channel_bits, rows=9,
                 columns=None):
        signature = FirstLayerSignature(
            lanes=lanes, input_bits=input_bits, weight_bits=weight_bits, psum_bits=psum_bits,
            addr_bits=addr_bits, pixel_addr_bits=pixel_addr_bits,
            weight_addr_bits=weight_addr_bits, coord_bits=coord_bits,
            channel_bits=channel_bits)
        check_int(rows, "Rows in parallel")
        columns = lanes if columns is None else columns
        check_int(columns, "Columns in parallel")
        if lanes % columns:
            raise ValueError(f"Columns in parallel must divide the lane count ({lanes}), "
                             f"not {columns!r}")
        self._rows, self._columns = rows, columns
        super().__init__(signature)

    rows = property(lambda self: self._rows)
    columns = property(lambda self: self._columns)

    @property
    def column_passes(self):
        """Cycles per bit-plane: ``lanes // columns``."""
        return self.lanes // self._columns

    def run_cycles(self, geometry, in_channels):
        """:func:`pim_run_cycles` with this block's parameters."""
        return pim_run_cycles(geometry, in_channels, rows=self._rows,
                              input_bits=self.input_bits, column_passes=self.column_passes)

    def elaborate(self, platform):
        m = Module()
        lanes, rows, bits = self.lanes, self._rows, self.input_bits
        passes, columns = self.column_passes, self._columns
        weight_row = row_layout(self.weight_bits, lanes)
        m.submodules.walker = walker = self.walker(shift_add=True)

        running, launch = Signal(), Signal()
        m.d.comb += [launch.eq(self.start & ~running), self.busy.eq(running)]
        with m.If(launch):
            m.d.sync += running.eq(1)

        # Chunk bookkeeping of the walker: the slot of the next tap, the first-chunk flag.
        w_slot = Signal(range(rows))
        w_first = Signal()  # the next tap belongs to the first chunk of its position
        pending = Signal()  # a closed chunk still waits in f_ after this cycle
        issue = Signal()
        m.d.comb += [
            walker.geometry.eq(self.geometry), walker.in_channels.eq(self.in_channels),
            walker.start.eq(launch), walker.issue.eq(issue),
            issue.eq(walker.valid & ~((w_slot == 0) & pending)),
            self.pixels.addr.eq(walker.pixel_addr), self.pixels.en.eq(issue),
            self.weights.addr.eq(walker.weight_addr), self.weights.en.eq(issue),
        ]
        w_close = walker.last | (w_slot == rows - 1)
        with m.If(issue):
            m.d.sync += [w_slot.eq(Mux(w_close, 0, w_slot + 1)),
                         w_first.eq(Mux(w_close, walker.last, w_first))]
        with m.If(launch):
            m.d.sync += [w_slot.eq(0), w_first.eq(1)]

        # r_: the tap's read data is on the ports this cycle.
        r_valid, r_close, r_first, r_last, r_final = (Signal(name=f"r_{n}") for n in (
            "valid", "close", "first", "last", "final"))
        r_slot = Signal(range(rows))
        r_out = Signal(self.addr_bits)
        m.d.sync += [r_valid.eq(issue), r_close.eq(w_close), r_first.eq(w_first),
                     r_last.eq(walker.last), r_final.eq(walker.final), r_slot.eq(w_slot),
                     r_out.eq(walker.position)]

        # f_: the chunk being filled (its meta is rewritten by every tap: the last one counts).
        f_pixels = [Signal(bits, name=f"f_pixel{s}") for s in range(rows)]
        f_weights = [Signal(weight_row, name=f"f_weight{s}") for s in range(rows)]
        f_full, f_first, f_last, f_final = (Signal(name=f"f_{n}") for n in (
            "full", "first", "last", "final"))
        f_count = Signal(range(rows + 1))
        f_out = Signal(self.addr_bits)

        # e_: the engine. Pixels shift left one bit per plane; slots past the chunk hold 0.
        e_first, e_last, e_final = (Signal(name=f"e_{n}") for n in ("first", "last", "final"))
        e_pixels = [Signal(bits, name=f"e_pixel{s}") for s in range(rows)]
        e_weights = [Signal(weight_row, name=f"e_weight{s}") for s in range(rows)]
        e_plane = Signal(range(bits))          # planes left after this one
        e_column = Signal(range(passes))       # the slice of lanes reduced this cycle
        e_out = Signal(self.addr_bits)
        acc_shape = signed(self.weight_bits + bits + ceil_log2(rows + 1) + 1)
        e_acc = [Signal(acc_shape, name=f"e_acc{i}") for i in range(lanes)]
        e_left = Signal(range(passes * bits + 1))  # compute cycles left, this one included
        e_last_cycle = Signal()
        m.d.comb += e_last_cycle.eq(e_left == 1)

        # The handover copies a full f_ (the cycle after its chunk closed) into an engine that
        # is idle or in its last cycle. A chunk start may be issued when f_ is free by the end
        # of the next cycle: empty after this cycle, or handed over in the next.
        closing = r_valid & r_close
        handover = Signal()
        occupied = closing | (f_full & ~handover)           # f_ holds a chunk after this cycle
        free_next = Mux(handover, passes * bits <= 1, e_left <= 2)  # engine free next cycle
        m.d.comb += [handover.eq(f_full & (e_left <= 1)), pending.eq(occupied & ~free_next)]

        with m.If(r_valid):
            for s in range(rows):
                with m.If(r_slot == s):
                    m.d.sync += [f_pixels[s].eq(self.pixels.data),
                                 f_weights[s].eq(self.weights.data)]
            m.d.sync += [f_first.eq(r_first), f_last.eq(r_last), f_final.eq(r_final),
                         f_count.eq(r_slot + 1), f_out.eq(r_out)]
        with m.If(closing):
            m.d.sync += f_full.eq(1)
        with m.Elif(handover):
            m.d.sync += f_full.eq(0)

        with m.If(handover):
            for s in range(rows):
                m.d.sync += [e_pixels[s].eq(Mux(s < f_count, f_pixels[s], 0)),
                             e_weights[s].eq(f_weights[s])]
            m.d.sync += [
                e_left.eq(passes * bits), e_plane.eq(bits - 1), e_column.eq(0),
                e_first.eq(f_first), e_last.eq(f_last), e_final.eq(f_final), e_out.eq(f_out),
            ]
        with m.Elif(e_left != 0):
            m.d.sync += e_left.eq(e_left - 1)
            with m.If(e_column == passes - 1):
                m.d.sync += [e_column.eq(0), e_plane.eq(e_plane - 1)]
                m.d.sync += [p.eq(p << 1) for p in e_pixels]
            with m.Else():
                m.d.sync += e_column.eq(e_column + 1)

        # The reduction of one bit-plane for ``columns`` lanes: AND-gate, adder tree.
        gates = [p[bits - 1] for p in e_pixels]
        fresh = e_plane == bits - 1  # the first plane of the chunk: Horner starts at 0
        sums = []
        for i in range(columns):
            weights = [Signal(signed(self.weight_bits), name=f"e_col{i}_w{s}")
                       for s in range(rows)]
            for s in range(rows):
                m.d.comb += weights[s].eq(e_weights[s][i])
                if passes > 1:
                    with m.Switch(e_column):
                        for p in range(1, passes):
                            with m.Case(p):
                                m.d.comb += weights[s].eq(e_weights[s][p * columns + i])
            plane = Signal(signed(self.weight_bits + ceil_log2(rows + 1)), name=f"e_sum{i}")
            m.d.comb += plane.eq(_tree(Mux(gate, weight, 0)
                                       for gate, weight in zip(gates, weights)))
            sums.append(plane)
        updated = []
        for lane in range(lanes):
            value = Signal(acc_shape, name=f"e_next{lane}")
            mine = e_column == lane // columns if passes > 1 else Const(1)
            m.d.comb += value.eq(Mux(mine, Mux(fresh, 0, e_acc[lane] << 1) + sums[lane % columns],
                                     e_acc[lane]))
            with m.If(e_left != 0):
                m.d.sync += e_acc[lane].eq(value)
            updated.append(value)

        # a_: add the chunk to the position's sum; the position's last chunk writes its row.
        a_valid, a_first, a_last, a_final = (Signal(name=f"a_{n}") for n in (
            "valid", "first", "last", "final"))
        a_out = Signal(self.addr_bits)
        a_sums = [Signal(acc_shape, name=f"a_sum{i}") for i in range(lanes)]
        m.d.sync += [a_valid.eq(e_last_cycle), a_first.eq(e_first), a_last.eq(e_last),
                     a_final.eq(e_final), a_out.eq(e_out)]
        m.d.sync += [a_sums[i].eq(updated[i]) for i in range(lanes)]
        self.write_sums(m, valid=a_valid, first=a_first, last=a_last, final=a_final, out=a_out,
                        addends=a_sums, running=running)
        return m
