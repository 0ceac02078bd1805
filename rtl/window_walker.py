"""The first-layer window walker: every in-range tap of every output position, one a cycle.

Both first-layer blocks (:class:`~.reference_mac.ReferenceMAC` and
:class:`~.pim_first_layer.PIMFirstLayer`) read the input image the same way: output
positions ``(oy, ox)`` in raster order and, per position, the in-range taps ``(c, ky, kx)``
ascending (``kx`` fastest), each as one pixel address and one weight row address::

    pixel  = c * in_h * in_w + iy * in_w + ix        iy = oy * stride_h - pad_h + ky
    weight = weight_base + (c * K_h + ky) * K_w + kx  ix = ox * stride_w - pad_w + kx

A linear layer (``geometry.linear = 1``) is walked as the ``H x W`` convolution it is: an
``in_h x in_w`` kernel on an ``in_h x in_w`` image with one output position, so feature ``f``
reads pixel ``f`` and weight row ``weight_base + f``. Per position the in-range ``ky``
(``kx``) form one interval, so padding costs nothing. Stages (prefixes of the signals that
belong to them):

* ``c_`` layer constants (products of geometry fields), registered every cycle;
* ``p_`` position: the output position to walk next and its window origin ``oy * s - p``;
* ``q_`` the position's in-range tap counts and first pixel and weight addresses;
* ``w_`` walker: the tap on the outputs (``pixel_addr``, ``weight_addr``).

Timing. ``start`` in cycle 0 puts position 0 in ``p_`` in cycle 1, in ``q_`` in cycle 2 and
its first tap on the outputs (``valid``) in cycle 3. The tap on the outputs advances in every
cycle ``issue`` is high; the next position's first tap is on the outputs in the cycle after
its predecessor's ``last`` tap is issued (``p_`` and ``q_`` have run ahead), so with ``issue``
always high the walker puts out one tap a cycle. A position without an in-range tap (or a
layer with ``in_channels = 0``) is on the outputs for one issue with ``taps = 0`` and
``last = 1``. ``geometry`` and ``in_channels`` must be stable from ``start`` until the final
position's last tap is issued, and ``start`` must not come earlier; ``out_h * out_w >= 1``.
"""

from amaranth.hdl import Mux, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .tap_generator import STRIDE_BITS, geometry_layout

__all__ = ["WindowWalker", "axis_taps"]

#: The walker's width parameters and their names in messages.
_WIDTHS = (("addr_bits", "Address width"), ("pixel_addr_bits", "Pixel address width"),
           ("weight_addr_bits", "Weight address width"), ("coord_bits", "Coordinate width"),
           ("channel_bits", "Channel width"))


def axis_taps(out, kernel, stride, pad, size):
    """In-range kernel rows (or columns) per output row (or column) along one axis: what
    the walker visits, ``max(0, min(kernel, size - o * stride + pad) - max(0, pad - o *
    stride))`` for ``o`` in ``range(out)``."""
    counts = []
    for o in range(out):
        origin = o * stride - pad
        counts.append(max(0, min(kernel, size - origin) - max(0, -origin)))
    return counts


def _times(value, factor):
    """``value * factor`` as a sum of shifted copies, one per bit of ``factor`` (no ``$mul``
    cell, so synthesis cannot put it in a DSP)."""
    return sum(Mux(factor[bit], value << bit, 0) for bit in range(len(factor)))


class WindowWalker(wiring.Component):
    """Walk the in-range taps of a first layer's output positions (see the module docstring).

    Parameters
    ----------
    addr_bits, pixel_addr_bits, weight_addr_bits, coord_bits, channel_bits : int
        As for :class:`~.first_layer.FirstLayerSignature`: widths of an output position's
        number, of the image and weight memories' addresses, of the geometry's coordinates
        and of ``in_channels``.
    shift_add : bool
        Compute the products of geometry fields as shifted adds instead of multiplications
        (no ``$mul`` cell, so nothing maps to a DSP48E1); same values, same cycles.

    Members
    -------
    geometry : In(geometry_layout(coord_bits=coord_bits, weight_addr_bits=weight_addr_bits))
        The layer's geometry, the tap generator's struct.
    in_channels : In(channel_bits)
        Input channels ``C``.
    start : In(1)
        Begins a walk at output position 0 (when the previous one is over).
    issue : In(1)
        The tap on the outputs is taken this cycle: the walker moves to the next one.
    valid : Out(1)
        A position's tap is on the outputs.
    taps : Out(1)
        The position has at least one in-range tap (else ``pixel_addr`` and ``weight_addr``
        are meaningless).
    first : Out(1)
        The tap is its position's first.
    last : Out(1)
        The tap is its position's last (always, when ``taps`` is 0).
    final : Out(1)
        The position is the layer's last.
    position : Out(addr_bits)
        The output position ``oy * out_w + ox``.
    pixel_addr : Out(pixel_addr_bits)
        The tap's pixel address.
    weight_addr : Out(weight_addr_bits)
        The tap's weight row address.

    Raises
    ------
    TypeError
        If a width is not a positive integer or ``shift_add`` is not a ``bool``.
    """

    def __init__(self, *, addr_bits, pixel_addr_bits, weight_addr_bits, coord_bits,
                 channel_bits, shift_add=False):
        self._widths = {"addr_bits": addr_bits, "pixel_addr_bits": pixel_addr_bits,
                        "weight_addr_bits": weight_addr_bits, "coord_bits": coord_bits,
                        "channel_bits": channel_bits}
        for name, what in _WIDTHS:
            check_int(self._widths[name], what)
        if not isinstance(shift_add, bool):
            raise TypeError(f"Shift-add choice must be a bool, not {shift_add!r}")
        self._shift_add = shift_add
        super().__init__({
            "geometry": In(geometry_layout(coord_bits=coord_bits,
                                           weight_addr_bits=weight_addr_bits)),
            "in_channels": In(channel_bits),
            "start": In(1),
            "issue": In(1),
            "valid": Out(1),
            "taps": Out(1),
            "first": Out(1),
            "last": Out(1),
            "final": Out(1),
            "position": Out(addr_bits),
            "pixel_addr": Out(pixel_addr_bits),
            "weight_addr": Out(weight_addr_bits),
        })

    addr_bits = property(lambda self: self._widths["addr_bits"])
    pixel_addr_bits = property(lambda self: self._widths["pixel_addr_bits"])
    weight_addr_bits = property(lambda self: self._widths["weight_addr_bits"])
    coord_bits = property(lambda self: self._widths["coord_bits"])
    channel_bits = property(lambda self: self._widths["channel_bits"])
    shift_add = property(lambda self: self._shift_add)

    def _product(self, value, factor):
        return _times(value, factor) if self._shift_add else factor * value

    @staticmethod
    def _axis(m, name, origin, kernel, size):
        """First in-range image coordinate, first kernel index and tap count along an axis.

        ``origin = o * s - p`` may be negative; the in-range coordinates are
        ``max(origin, 0) .. min(origin + K, size) - 1``.
        """
        width = len(origin)
        first = Signal(width - 1, name=f"{name}_first")
        end = Signal(signed(width + 1), name=f"{name}_end")
        count = Signal(signed(width + 1), name=f"{name}_count")
        m.d.comb += [
            first.eq(Mux(origin[-1], 0, origin)),
            end.eq(Mux(origin + kernel > size, size, origin + kernel)),
            count.eq(end - first),
        ]
        return first, (first - origin)[:width - 1], count

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        size = self.coord_bits + 1
        # A window origin o * s - p: from -(2**coord_bits) up to (2**size) * MAX_STRIDE.
        origin_shape = signed(size + STRIDE_BITS + 1)

        # The geometry the walk uses: a linear layer is an H x W kernel on an H x W image.
        linear = g.linear
        kh, kw = Signal(size), Signal(size)
        m.d.comb += [kh.eq(Mux(linear, g.in_h, g.kernel_h)),
                     kw.eq(Mux(linear, g.in_w, g.kernel_w))]
        stride_h, stride_w = Mux(linear, 1, g.stride_h), Mux(linear, 1, g.stride_w)
        pad_h, pad_w = Mux(linear, 0, g.pad_h), Mux(linear, 0, g.pad_w)
        out_h, out_w = Mux(linear, 1, g.out_h), Mux(linear, 1, g.out_w)

        # c_: products of geometry fields, first used by the walker two cycles after start.
        c_taps, c_area = Signal(2 * size), Signal(2 * size)
        m.d.sync += [c_taps.eq(self._product(kw, kh)),
                     c_area.eq(self._product(g.in_w, g.in_h))]

        # p_: output positions in raster order, one per cycle as the next stage takes them.
        p_valid, p_final = Signal(), Signal()
        p_oy, p_ox = Signal(size), Signal(size)
        p_iy0, p_ix0 = Signal(origin_shape), Signal(origin_shape)
        p_out = Signal(self.addr_bits)
        m.d.comb += p_final.eq((p_oy == out_h - 1) & (p_ox == out_w - 1))

        # q_: the position's in-range tap counts and first addresses.
        q_valid, q_taps, q_final = Signal(), Signal(), Signal()
        q_out = Signal(self.addr_bits)
        q_ny1, q_nx1 = Signal(size), Signal(size)
        q_pixel = Signal(self.pixel_addr_bits)
        q_weight = Signal(self.weight_addr_bits)

        # w_: the tap on the outputs and what is left of its position.
        w_ny1, w_nx1 = Signal(size), Signal(size)
        w_y_left, w_x_left = Signal(size), Signal(size)
        w_c_left = Signal(self.channel_bits)
        w_pixel, w_pixel_row, w_pixel_chan = (Signal(self.pixel_addr_bits) for _ in range(3))
        w_weight, w_weight_row, w_weight_chan = (Signal(self.weight_addr_bits)
                                                 for _ in range(3))
        m.d.comb += self.last.eq(~self.taps | ((w_x_left == 0) & (w_y_left == 0)
                                               & (w_c_left == 0)))

        w_load = ~self.valid | (self.last & self.issue)
        q_load = ~q_valid | w_load
        p_move = p_valid & q_load

        with m.If(self.start):
            m.d.sync += [p_valid.eq(1), p_oy.eq(0), p_ox.eq(0),
                         p_iy0.eq(-pad_h), p_ix0.eq(-pad_w), p_out.eq(0)]
        with m.Elif(p_move):
            m.d.sync += p_out.eq(p_out + 1)
            with m.If(p_final):
                m.d.sync += p_valid.eq(0)
            with m.Elif(p_ox == out_w - 1):
                m.d.sync += [p_ox.eq(0), p_ix0.eq(-pad_w), p_oy.eq(p_oy + 1),
                             p_iy0.eq(p_iy0 + stride_h)]
            with m.Else():
                m.d.sync += [p_ox.eq(p_ox + 1), p_ix0.eq(p_ix0 + stride_w)]

        iy_first, ky_first, ny = self._axis(m, "q_y", p_iy0, kh, g.in_h)
        ix_first, kx_first, nx = self._axis(m, "q_x", p_ix0, kw, g.in_w)
        with m.If(q_load):
            m.d.sync += [
                q_valid.eq(p_valid),
                q_taps.eq((ny > 0) & (nx > 0) & (self.in_channels != 0)),
                q_final.eq(p_final), q_out.eq(p_out),
                q_ny1.eq(ny - 1), q_nx1.eq(nx - 1),
                q_pixel.eq(self._product(g.in_w, iy_first) + ix_first),
                q_weight.eq(g.weight_base + self._product(kw, ky_first) + kx_first),
            ]

        with m.If(w_load):
            m.d.sync += [
                self.valid.eq(q_valid), self.taps.eq(q_taps), self.final.eq(q_final),
                self.first.eq(1), self.position.eq(q_out),
                w_ny1.eq(q_ny1), w_nx1.eq(q_nx1),
                w_y_left.eq(q_ny1), w_x_left.eq(q_nx1), w_c_left.eq(self.in_channels - 1),
                w_pixel.eq(q_pixel), w_pixel_row.eq(q_pixel), w_pixel_chan.eq(q_pixel),
                w_weight.eq(q_weight), w_weight_row.eq(q_weight), w_weight_chan.eq(q_weight),
            ]
        with m.Elif(self.issue):
            m.d.sync += self.first.eq(0)
            with m.If(w_x_left != 0):
                m.d.sync += [w_x_left.eq(w_x_left - 1), w_pixel.eq(w_pixel + 1),
                             w_weight.eq(w_weight + 1)]
            with m.Elif(w_y_left != 0):
                next_pixel, next_weight = w_pixel_row + g.in_w, w_weight_row + kw
                m.d.sync += [w_y_left.eq(w_y_left - 1), w_x_left.eq(w_nx1),
                             w_pixel.eq(next_pixel), w_pixel_row.eq(next_pixel),
                             w_weight.eq(next_weight), w_weight_row.eq(next_weight)]
            with m.Else():
                next_pixel, next_weight = w_pixel_chan + c_area, w_weight_chan + c_taps
                m.d.sync += [w_c_left.eq(w_c_left - 1), w_y_left.eq(w_ny1), w_x_left.eq(w_nx1),
                             w_pixel.eq(next_pixel), w_pixel_row.eq(next_pixel),
                             w_pixel_chan.eq(next_pixel),
                             w_weight.eq(next_weight), w_weight_row.eq(next_weight),
                             w_weight_chan.eq(next_weight)]
        m.d.comb += [self.pixel_addr.eq(w_pixel), self.weight_addr.eq(w_weight)]
        return m
