"""Tap generator: expands input spike events into the kernel taps that land in the output map.

An event ``(c, y, x)`` of a conv layer touches output position ``(oy, ox)`` through kernel
tap ``(ky, kx)`` when ``oy = (y + pad_h - ky) / stride_h`` and ``ox = (x + pad_w - kx) /
stride_w`` are integers inside the output map (``docs/accelerator.md`` section 3). Along one
axis the valid taps form an arithmetic progression: the first one is
``k0 = (y + p) mod s`` at ``o0 = (y + p) div s``, clamped to the last output row
``o0 = out - 1``, ``k0 = y + p - s * (out - 1)`` when ``(y + p) div s >= out``; every next
one is ``k + s`` at ``o - 1``, until ``k + s >= K`` or ``o = 0``. So the generator divides
once per event (by a stride of at most :data:`MAX_STRIDE`, a short restoring divider) and
then walks only the valid taps, one per cycle: out-of-range and non-divisible taps cost
nothing.

Stages (prefixes of the signals that belong to them):

* ``c_`` layer constants derived from the geometry (products of geometry fields), registered;
* ``p_`` first prepare stage: ``divmod(y + p, s)`` and the clamp, per axis;
* ``q_`` second prepare stage: the first tap's output and weight addresses (the multiplies);
* ``e_`` emitter: walks the taps of one event, one per output transfer.

Cycle cost (the cycle model relies on it). With events offered back to back and the
consumer always ready, the end marker is transferred in cycle

    ``LATENCY + sum over events of max(1, taps(event))``

counting from ``0`` in the cycle the first event is transferred in (for a timestep with no
events: the end marker transferred in cycle 0 leaves in cycle ``LATENCY``). An event with
taps costs exactly its taps (the next event's first tap follows its last tap directly); an
event with no tap in range costs one idle cycle. In general (bubbles, a slow producer) the
emitter starts item ``e`` (an event or the marker) in cycle
``max(finish(e - 1), transfer(e) + LATENCY)`` and spends ``max(1, taps(e))`` cycles on it
(one for the marker) plus the cycles the consumer holds ``ready`` low; the generator holds
up to three items (``p_``, ``q_``, ``e_``), so it takes an event per cycle until all three
are full.

Weight rows follow ``docs/accelerator.md`` section 2: a conv tap reads row
``weight_base + (c * K_h + ky) * K_w + kx`` (the sequencer folds the channel group's offset
into ``weight_base``); a linear layer turns event ``(c, y, x)`` into feature
``f = c * in_h * in_w + y * in_w + x`` and one tap at ``out_addr = 0``, weight row
``weight_base + f``.

**Position packing** (built with ``max_pack > 0``, selected per layer by the geometry's
``pack``, ``P = 2**pack <= 2**max_pack``). A narrow layer leaves most lanes idle (a
16-channel layer uses 16 of 64 lanes); packed, one partial-sum row holds ``P`` consecutive
output positions, position ``p`` in slot ``p mod P`` (its own ``lanes / P`` lanes), and one
weight row holds ``P`` kernel columns, so that one item updates up to ``P`` positions at
once. Only for conv layers with ``stride_w = 1`` (``stride_h`` any; other layers must set
``pack = 0``, and ``pack`` must not exceed ``max_pack``); ``pack = 0``, and any linear
layer, is the unpacked generator exactly (``count = 1``, ``rotate = 0``). The weight
row of input channel ``c``, kernel row ``ky`` and chunk ``j = 0 .. cols - 1``, ``cols =
ceil(K_w / P)``, is ``weight_base + (c * K_h + ky) * cols + j``; its slot ``i`` holds kernel
column ``j * P + P - 1 - i`` (reversed; zero past ``K_w``). Per valid kernel row, the valid
columns ``kx`` (ascending; with stride 1 a run ``kx0 .. min(K_w - 1, x + pad_w)``) split
into *chunks*, maximal runs sharing ``kx >> pack``, and the generator emits one item per
chunk (``ky`` then ``kx`` ascending):

* ``weight_addr``: the chunk's weight row (``j = kx >> pack``);
* ``count``: its taps, ``1 .. P``;
* ``out_addr``: the lowest position it lands on (``oy * out_w + ox`` of its largest ``kx``,
  a row-major index of the whole map); it covers ``out_addr .. out_addr + count - 1``;
* ``rotate``: ``(p + k + 1) mod P`` for its taps ``(k, p)`` (``p + k`` is constant along a
  kernel row): position ``p``'s slot ``p mod P`` takes weight slot ``(p mod P - rotate) mod
  P``, which holds its column ``k``.

Every row's first chunk is the same (``kx0`` up to the end of its weight row or the row's
last column); ``q_`` computes it once per event, and the emitter steps ``P`` taps at a time
from there (or the rest of the row), so the per-cycle next state is still one subtract
(beside a small compare) and muxes. Packed, the cycle cost above holds with
``chunks(event)`` (the items of the event) in place of ``taps(event)``: one cycle per item,
an event without a tap in range still one idle cycle, ``LATENCY`` unchanged.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import MAX_PACK, event_layout, tap_layout
from .checks import check_int

__all__ = ["MAX_STRIDE", "LATENCY", "geometry_layout", "TapGenerator"]

#: Width of the stride fields: strides ``1 .. 7`` (the divider is one short subtract per bit).
STRIDE_BITS = 3
#: Largest stride the divider handles.
MAX_STRIDE = (1 << STRIDE_BITS) - 1
#: Cycles from the first event's transfer to the first tap's transfer (``p_``, ``q_``, ``e_``).
LATENCY = 3


def geometry_layout(*, coord_bits, weight_addr_bits):
    """Layer geometry seen by the tap generator; constant while a layer runs.

    Sizes (``kernel_*``, ``out_*``, ``in_*``) are ``coord_bits + 1`` wide so that a full
    ``2**coord_bits`` map fits; ``stride_*`` is ``1 .. MAX_STRIDE``. ``in_h``/``in_w`` are
    used only when ``linear = 1`` (the kernel, stride, padding and output fields are then
    ignored). ``pack`` is ``log2`` of the positions per partial-sum row (position packing,
    at most the generator's ``max_pack``; only for conv layers with ``stride_w = 1``); a
    generator built with ``max_pack = 0`` ignores it.
    """
    size = unsigned(coord_bits + 1)
    return data.StructLayout({
        "kernel_h": size, "kernel_w": size,
        "stride_h": unsigned(STRIDE_BITS), "stride_w": unsigned(STRIDE_BITS),
        "pad_h": unsigned(coord_bits), "pad_w": unsigned(coord_bits),
        "out_h": size, "out_w": size,
        "in_h": size, "in_w": size,
        "weight_base": unsigned(weight_addr_bits),
        "linear": unsigned(1),
        "pack": unsigned(2),
    })


def _times_stride(value, stride):
    """``value * stride`` as a few shifted adds (the stride is 3 bits): no DSP for it."""
    return sum(Mux(stride[bit], value << bit, 0) for bit in range(STRIDE_BITS))


class TapGenerator(wiring.Component):
    """Turns a timestep's events into ``tap_layout`` taps, skipping taps outside the map.

    Both streams follow the ``amaranth.lib.stream`` rules. The ``end`` marker is forwarded
    after the taps of every event before it. Geometry is sampled into registers each cycle
    (the ``c_`` constants): it must be stable from at least one cycle before the first
    event of a layer is transferred until the layer's last tap has left.

    Parameters
    ----------
    channel_bits : int
        Width of an event's channel.
    coord_bits : int
        Width of an event's ``y``/``x`` (and of the padding).
    addr_bits : int
        Width of a tap's ``out_addr`` (a position of the partial-sum bank).
    weight_addr_bits : int
        Width of a tap's ``weight_addr``.
    max_pack : int
        ``0 .. MAX_PACK`` (default ``0``): the largest ``pack`` a layer may use (position
        packing, module docstring). ``0`` builds the unpacked generator, whose taps have no
        ``count``/``rotate``; ``1`` or ``2`` adds them and the chunk walk.

    Members
    -------
    geometry : In(geometry_layout(coord_bits, weight_addr_bits))
        The current layer's geometry.
    i_stream : In(stream.Signature(event_layout(channel_bits, coord_bits)))
        Events, then ``end``.
    o_stream : Out(stream.Signature(tap_layout(addr_bits, weight_addr_bits, max_pack)))
        Taps in event order and, per event, ``ky`` then ``kx`` ascending; then ``end``.
        Fields: ``out_addr`` (the position), ``weight_addr`` (the weight row), ``end``; with
        ``max_pack > 0`` also ``count`` (``max_pack + 1`` bits) and ``rotate`` (``max_pack``
        bits). For a packed layer an item is a chunk: ``out_addr`` its lowest position,
        ``count`` its taps, ``rotate`` its weight-slot rotation; unpacked (``pack = 0`` or
        linear) ``count = 1`` and ``rotate = 0``. On the ``end`` marker only ``end`` counts.
    busy : Out(1)
        An event or marker is offered or inside the generator.

    Raises
    ------
    TypeError
        If a width is not a positive integer, or ``max_pack`` not an integer in
        ``0 .. MAX_PACK``.
    """

    def __init__(self, *, channel_bits, coord_bits, addr_bits, weight_addr_bits, max_pack=0):
        check_int(channel_bits, "Channel width")
        check_int(coord_bits, "Coordinate width")
        check_int(addr_bits, "Address width")
        check_int(weight_addr_bits, "Weight address width")
        check_int(max_pack, "Maximum pack", 0, MAX_PACK)
        self._channel_bits = channel_bits
        self._coord_bits = coord_bits
        self._addr_bits = addr_bits
        self._weight_addr_bits = weight_addr_bits
        self._max_pack = max_pack
        super().__init__({
            "geometry": In(geometry_layout(coord_bits=coord_bits,
                                           weight_addr_bits=weight_addr_bits)),
            "i_stream": In(stream.Signature(event_layout(channel_bits=channel_bits,
                                                         coord_bits=coord_bits))),
            "o_stream": Out(stream.Signature(tap_layout(addr_bits=addr_bits,
                                                        weight_addr_bits=weight_addr_bits,
                                                        max_pack=max_pack))),
            "busy": Out(1),
        })

    @property
    def channel_bits(self):
        return self._channel_bits

    @property
    def coord_bits(self):
        return self._coord_bits

    @property
    def addr_bits(self):
        return self._addr_bits

    @property
    def weight_addr_bits(self):
        return self._weight_addr_bits

    @property
    def max_pack(self):
        return self._max_pack

    def _divmod(self, m, name, dividend, divisor):
        """``divmod(dividend, divisor)`` by restoring division, one quotient bit per step.

        The remainder is below the divisor, so every step is a ``STRIDE_BITS + 1`` bit
        compare-and-subtract regardless of the dividend's width.
        """
        width = len(dividend)
        quotient = Signal(width, name=f"{name}_q")
        remainder = Const(0, STRIDE_BITS)
        for bit in reversed(range(width)):
            # One signal per step keeps the simulator's expression trees linear.
            trial = Signal(STRIDE_BITS + 1, name=f"{name}_trial{bit}")
            fits = Signal(name=f"{name}_fits{bit}")
            step = Signal(STRIDE_BITS, name=f"{name}_rem{bit}")
            m.d.comb += [trial.eq(Cat(dividend[bit], remainder)), fits.eq(trial >= divisor),
                         step.eq(Mux(fits, trial - divisor, trial)), quotient[bit].eq(fits)]
            remainder = step
        return quotient, remainder

    def _first_tap(self, m, name, coord, pad, stride, out, kernel, last_start):
        """First valid tap ``(k0, o0)`` along one axis and whether the axis has any."""
        size = self._coord_bits + 1
        shifted = Signal(size + 1, name=f"{name}_shifted")
        m.d.comb += shifted.eq(coord + pad)
        quotient, remainder = self._divmod(m, name, shifted, stride)
        clamp = Signal(name=f"{name}_clamp")
        k0 = Signal(size + 1, name=f"{name}_k0")
        o0 = Signal(size, name=f"{name}_o0")
        m.d.comb += [
            clamp.eq(quotient >= out),
            # Past the last output row the first tap is the one that lands on that row.
            k0.eq(Mux(clamp, shifted - last_start, remainder)),
            o0.eq(Mux(clamp, out - 1, quotient)),
        ]
        return k0, o0, k0 < kernel

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        size = self._coord_bits + 1
        addr_bits, waddr_bits = self._addr_bits, self._weight_addr_bits
        max_pack = self._max_pack
        packing = max_pack > 0

        # c_: layer constants. Registered so that no product of geometry fields sits on a
        # per-event path; the geometry is static while a layer runs.
        if packing:
            # Packed layer (pack > 0, conv): P = 2**pack taps per weight row, so a kernel
            # row has ceil(K_w / P) weight rows ("columns"). pack = 0 and linear layers walk
            # unpacked (P = 1, a column per kernel column).
            pack = Signal(max_pack.bit_length())
            mask = Signal(max_pack)
            cols = Signal(size)
            m.d.comb += [
                pack.eq(Mux(g.linear, 0, g.pack)),
                mask.eq((Const(1, max_pack + 1) << pack) - 1),
                cols.eq((g.kernel_w + mask) >> pack),
            ]
            c_packed, c_pack = Signal(), Signal.like(pack)
            c_mask, c_positions = Signal(max_pack), Signal(max_pack + 1)
            c_cols = Signal(size)
            m.d.sync += [
                c_packed.eq(pack != 0), c_pack.eq(pack),
                c_mask.eq(mask), c_positions.eq(mask + 1), c_cols.eq(cols),
            ]
        else:
            cols = c_cols = g.kernel_w
        c_taps = Signal(2 * size)
        c_in_area = Signal(2 * size)
        c_last_h = Signal(size + STRIDE_BITS)
        c_last_w = Signal(size + STRIDE_BITS)
        c_row_step = Signal(size + STRIDE_BITS)
        m.d.sync += [
            c_taps.eq(g.kernel_h * cols),
            c_in_area.eq(g.in_h * g.in_w),
            c_last_h.eq(_times_stride(g.out_h - 1, g.stride_h)),
            c_last_w.eq(_times_stride(g.out_w - 1, g.stride_w)),
            c_row_step.eq(_times_stride(cols, g.stride_h)),
        ]

        event = self.i_stream.payload
        p_valid = Signal()
        p_event = Signal.like(event)
        p_ky0, p_kx0 = Signal(size), Signal(size)
        p_oy0, p_ox0 = Signal(size), Signal(size)
        p_taps = Signal()
        q_valid = Signal()
        q_end = Signal()
        q_taps = Signal()
        q_ky0, q_kx0 = Signal(size), Signal(size)
        q_oy0, q_ox0 = Signal(size), Signal(size)
        q_out, q_weight = Signal(addr_bits), Signal(waddr_bits)
        e_valid = Signal()
        e_end = Signal()
        e_taps = Signal()
        e_ky, e_kx = Signal(size), Signal(size)
        e_oy, e_ox = Signal(size), Signal(size)
        e_kx0, e_ox0 = Signal(size), Signal(size)
        e_out, e_weight = Signal(addr_bits), Signal(waddr_bits)
        e_row_out, e_row_weight = Signal(addr_bits), Signal(waddr_bits)
        if packing:
            # Packed, the emitter walks chunks: e_out is the chunk's lowest position, e_count
            # its taps, e_rem the taps of the kernel row after it, e_rotate its rotation
            # (constant along a kernel row). Every row's first chunk is the same (same kx0,
            # same last column): q_ computes it once per event, e_count0/e_rem0 keep it.
            q_count0, q_rem0 = Signal(max_pack + 1), Signal(size)
            e_count, e_count0 = Signal(max_pack + 1), Signal(max_pack + 1)
            e_rem, e_rem0 = Signal(size), Signal(size)
            e_rotate = Signal(max_pack)
            # A row ends packed when no tap is left after the chunk; unpacked, at output
            # column 0 or the kernel's last column.
            last_x = Mux(c_packed, e_rem == 0,
                         (e_ox == 0) | (e_kx + g.stride_w >= g.kernel_w))
        else:
            last_x = (e_ox == 0) | (e_kx + g.stride_w >= g.kernel_w)

        # The emitter finishes its item on the last tap's (or the marker's) transfer, and at
        # once for an event without taps: that is the one idle cycle such an event costs.
        last_y = (e_oy == 0) | (e_ky + g.stride_h >= g.kernel_h)
        e_finish = Signal()
        m.d.comb += e_finish.eq(Mux(e_end, self.o_stream.ready,
                                    Mux(e_taps, self.o_stream.ready & last_x & last_y, 1)))
        e_load = ~e_valid | e_finish
        q_move = q_valid & e_load
        q_load = ~q_valid | q_move
        p_move = p_valid & q_load
        p_load = ~p_valid | p_move
        m.d.comb += [
            self.i_stream.ready.eq(p_load),
            self.busy.eq(self.i_stream.valid | p_valid | q_valid | e_valid),
        ]

        # p_: per axis, divide by the stride and clamp to the output map.
        ky0, oy0, y_ok = self._first_tap(m, "p_y", event.y, g.pad_h, g.stride_h, g.out_h,
                                         g.kernel_h, c_last_h)
        kx0, ox0, x_ok = self._first_tap(m, "p_x", event.x, g.pad_w, g.stride_w, g.out_w,
                                         g.kernel_w, c_last_w)
        with m.If(p_load):
            m.d.sync += [
                p_valid.eq(self.i_stream.valid),
                p_event.eq(event),
                # A linear event is one tap at (0, 0): its "last" tests then hold at once.
                p_ky0.eq(Mux(g.linear, 0, ky0)), p_kx0.eq(Mux(g.linear, 0, kx0)),
                p_oy0.eq(Mux(g.linear, 0, oy0)), p_ox0.eq(Mux(g.linear, 0, ox0)),
                p_taps.eq(~event.end & (g.linear | (y_ok & x_ok))),
            ]

        # q_: the first tap's addresses. Three multiplies, shared between conv and linear.
        channel_offset = p_event.channel * Mux(g.linear, c_in_area, c_taps)
        row_offset = Mux(g.linear, p_event.y, p_oy0) * Mux(g.linear, g.in_w, g.out_w)
        tap_offset = p_ky0 * c_cols
        if packing:
            # The first chunk: columns kx0 .. the end of kx0's weight row, at most the row's
            # last valid column (min(K_w - 1, kx0 + ox0): stride 1); its lowest position is
            # its last column's. Small widths, beside the multiplies.
            row_taps, first_taps, low_ox = Signal(size), Signal(max_pack + 1), Signal(size)
            rest = Signal(size)
            m.d.comb += [
                rest.eq(g.kernel_w - p_kx0),
                row_taps.eq(Mux(rest <= p_ox0, rest, p_ox0 + 1)),
                first_taps.eq(c_positions - (p_kx0 & c_mask)),   # 1 unpacked
            ]
            count0 = Mux(c_packed & (row_taps < first_taps), row_taps, first_taps)
            m.d.comb += low_ox.eq(p_ox0 + 1 - count0)
            with m.If(q_load):
                m.d.sync += [q_count0.eq(count0), q_rem0.eq(row_taps - count0)]
            column, first_ox = p_kx0 >> c_pack, low_ox
        else:
            column, first_ox = p_kx0, p_ox0
        with m.If(q_load):
            m.d.sync += [
                q_valid.eq(p_valid),
                q_end.eq(p_event.end), q_taps.eq(p_taps),
                q_ky0.eq(p_ky0), q_kx0.eq(p_kx0), q_oy0.eq(p_oy0), q_ox0.eq(p_ox0),
                q_out.eq(Mux(g.linear, 0, row_offset + first_ox)),
                q_weight.eq(g.weight_base + channel_offset
                            + Mux(g.linear, row_offset + p_event.x, tap_offset + column)),
            ]

        # e_: walk the taps, kx fastest; out_addr steps by -1 per column and -out_w per row.
        m.d.comb += [
            self.o_stream.valid.eq(e_valid & (e_taps | e_end)),
            self.o_stream.payload.out_addr.eq(e_out),
            self.o_stream.payload.weight_addr.eq(e_weight),
            self.o_stream.payload.end.eq(e_end),
        ]
        if packing:
            m.d.comb += [self.o_stream.payload.count.eq(e_count),
                         self.o_stream.payload.rotate.eq(e_rotate)]
            # The next chunk of a row: P taps if that many are left, else the rest; both
            # position steps are computed beside the compare. Unpacked: always 1 (P = 1).
            full = ~c_packed | (e_rem > c_mask)
            next_count = Mux(full, c_positions, e_rem)
            next_rem = Mux(full, e_rem - c_positions, 0)
            next_out = Mux(full, e_out - c_positions, e_out - e_rem)
            next_weight = e_weight + Mux(c_packed, 1, g.stride_w)
        else:
            next_out = e_out - 1
            next_weight = e_weight + g.stride_w
        with m.If(e_load):
            m.d.sync += [
                e_valid.eq(q_valid), e_end.eq(q_end), e_taps.eq(q_taps),
                e_ky.eq(q_ky0), e_kx.eq(q_kx0), e_oy.eq(q_oy0), e_ox.eq(q_ox0),
                e_kx0.eq(q_kx0), e_ox0.eq(q_ox0),
                e_out.eq(q_out), e_weight.eq(q_weight),
                e_row_out.eq(q_out), e_row_weight.eq(q_weight),
            ]
            if packing:
                # rotate = (p + k + 1) mod P for the chunk's lowest position p and last
                # column k = kx0 + count0 - 1; only the low bits of that sum matter.
                m.d.sync += [
                    e_count.eq(q_count0), e_count0.eq(q_count0),
                    e_rem.eq(q_rem0), e_rem0.eq(q_rem0),
                    e_rotate.eq((q_out[:max_pack] + q_kx0[:max_pack] + q_count0) & c_mask),
                ]
        with m.Elif(self.o_stream.valid & self.o_stream.ready):
            with m.If(~last_x):
                m.d.sync += [
                    e_kx.eq(e_kx + g.stride_w), e_ox.eq(e_ox - 1),
                    e_out.eq(next_out), e_weight.eq(next_weight),
                ]
                if packing:
                    m.d.sync += [e_count.eq(next_count), e_rem.eq(next_rem)]
            with m.Else():
                next_row_out = e_row_out - g.out_w
                next_row_weight = e_row_weight + c_row_step
                m.d.sync += [
                    e_ky.eq(e_ky + g.stride_h), e_oy.eq(e_oy - 1),
                    e_kx.eq(e_kx0), e_ox.eq(e_ox0),
                    e_row_out.eq(next_row_out), e_row_weight.eq(next_row_weight),
                    e_out.eq(next_row_out), e_weight.eq(next_row_weight),
                ]
                if packing:
                    # A row up the map: every position - out_w, so p + k too.
                    m.d.sync += [e_count.eq(e_count0), e_rem.eq(e_rem0),
                                 e_rotate.eq((e_rotate - g.out_w[:max_pack]) & c_mask)]
        return m
