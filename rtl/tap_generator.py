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
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import event_layout, tap_layout
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
    ignored).
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

    Members
    -------
    geometry : In(geometry_layout(coord_bits, weight_addr_bits))
        The current layer's geometry.
    i_stream : In(stream.Signature(event_layout(channel_bits, coord_bits)))
        Events, then ``end``.
    o_stream : Out(stream.Signature(tap_layout(addr_bits, weight_addr_bits)))
        Taps in event order and, per event, ``ky`` then ``kx`` ascending; then ``end``.
    busy : Out(1)
        An event or marker is offered or inside the generator.

    Raises
    ------
    TypeError
        If a width is not a positive integer.
    """

    def __init__(self, *, channel_bits, coord_bits, addr_bits, weight_addr_bits):
        check_int(channel_bits, "Channel width")
        check_int(coord_bits, "Coordinate width")
        check_int(addr_bits, "Address width")
        check_int(weight_addr_bits, "Weight address width")
        self._channel_bits = channel_bits
        self._coord_bits = coord_bits
        self._addr_bits = addr_bits
        self._weight_addr_bits = weight_addr_bits
        super().__init__({
            "geometry": In(geometry_layout(coord_bits=coord_bits,
                                           weight_addr_bits=weight_addr_bits)),
            "i_stream": In(stream.Signature(event_layout(channel_bits=channel_bits,
                                                         coord_bits=coord_bits))),
            "o_stream": Out(stream.Signature(tap_layout(addr_bits=addr_bits,
                                                        weight_addr_bits=weight_addr_bits))),
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

        # c_: layer constants. Registered so that no product of geometry fields sits on a
        # per-event path; the geometry is static while a layer runs.
        c_taps = Signal(2 * size)
        c_in_area = Signal(2 * size)
        c_last_h = Signal(size + STRIDE_BITS)
        c_last_w = Signal(size + STRIDE_BITS)
        c_row_step = Signal(size + STRIDE_BITS)
        m.d.sync += [
            c_taps.eq(g.kernel_h * g.kernel_w),
            c_in_area.eq(g.in_h * g.in_w),
            c_last_h.eq(_times_stride(g.out_h - 1, g.stride_h)),
            c_last_w.eq(_times_stride(g.out_w - 1, g.stride_w)),
            c_row_step.eq(_times_stride(g.kernel_w, g.stride_h)),
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

        # The emitter finishes its item on the last tap's (or the marker's) transfer, and at
        # once for an event without taps: that is the one idle cycle such an event costs.
        last_x = (e_ox == 0) | (e_kx + g.stride_w >= g.kernel_w)
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
        tap_offset = p_ky0 * g.kernel_w
        with m.If(q_load):
            m.d.sync += [
                q_valid.eq(p_valid),
                q_end.eq(p_event.end), q_taps.eq(p_taps),
                q_ky0.eq(p_ky0), q_kx0.eq(p_kx0), q_oy0.eq(p_oy0), q_ox0.eq(p_ox0),
                q_out.eq(Mux(g.linear, 0, row_offset + p_ox0)),
                q_weight.eq(g.weight_base + channel_offset
                            + Mux(g.linear, row_offset + p_event.x, tap_offset + p_kx0)),
            ]

        # e_: walk the taps, kx fastest; out_addr steps by -1 per column and -out_w per row.
        m.d.comb += [
            self.o_stream.valid.eq(e_valid & (e_taps | e_end)),
            self.o_stream.payload.out_addr.eq(e_out),
            self.o_stream.payload.weight_addr.eq(e_weight),
            self.o_stream.payload.end.eq(e_end),
        ]
        with m.If(e_load):
            m.d.sync += [
                e_valid.eq(q_valid), e_end.eq(q_end), e_taps.eq(q_taps),
                e_ky.eq(q_ky0), e_kx.eq(q_kx0), e_oy.eq(q_oy0), e_ox.eq(q_ox0),
                e_kx0.eq(q_kx0), e_ox0.eq(q_ox0),
                e_out.eq(q_out), e_weight.eq(q_weight),
                e_row_out.eq(q_out), e_row_weight.eq(q_weight),
            ]
        with m.Elif(self.o_stream.valid & self.o_stream.ready):
            with m.If(~last_x):
                m.d.sync += [
                    e_kx.eq(e_kx + g.stride_w), e_ox.eq(e_ox - 1),
                    e_out.eq(e_out - 1), e_weight.eq(e_weight + g.stride_w),
                ]
            with m.Else():
                next_row_out = e_row_out - g.out_w
                next_row_weight = e_row_weight + c_row_step
                m.d.sync += [
                    e_ky.eq(e_ky + g.stride_h), e_oy.eq(e_oy - 1),
                    e_kx.eq(e_kx0), e_ox.eq(e_ox0),
                    e_row_out.eq(next_row_out), e_row_weight.eq(next_row_weight),
                    e_out.eq(next_row_out), e_weight.eq(next_row_weight),
                ]
        return m
