"""Reference MAC: a direct-encoded layer's current, computed once per image into a bank.

The first layer of a network reads the multi-bit input image, not spikes, so its current is
the same every timestep (``docs/accelerator.md`` section 3, first layer). This block
computes it for one channel group, bias included, and writes row ``p`` of a partial-sum
bank once per output position ``p``::

    bank[p][i] = bias[i] + sum over in-range (c, ky, kx) of pixel[c, iy, ix] * weight_row[i]

with ``iy = oy * stride_h - pad_h + ky``, ``ix = ox * stride_w - pad_w + kx``, weight row
``weight_base + (c * K_h + ky) * K_w + kx`` (the rows the PE array reads; the sequencer
folds the group's offset into ``weight_base``) and pixel address ``c * in_h * in_w + iy *
in_w + ix``. Pixels are unsigned, weights signed; products and sums are exact and wrap at
``psum_bits`` (the configuration makes that wide enough, ``AcceleratorConfig.fits``). One
plain multiplier per lane (DSP48E1s on the xc7z020); ``PIMFirstLayer`` has the same ports and
replaces it when ``AcceleratorConfig.first_layer == "pim"``.

Linear layers use the tap generator's description: ``geometry.linear = 1``,
``in_channels`` = ``C`` and ``geometry.in_h``/``in_w`` = ``H``/``W`` of the input, whose
features are numbered ``f = c * H * W + y * W + x`` (C order; a flat input of ``N`` features
is ``C = N``, ``H = W = 1``). The kernel, stride, padding and output fields are then ignored:
the MAC runs the layer as the convolution it is, a ``H x W`` kernel on a ``H x W`` image with
one output position (``0``), so feature ``f`` reads pixel ``f`` and weight row
``weight_base + f``.

Only in-range taps are visited: per position the valid ``ky`` (``kx``) form one interval, so
padding costs nothing. Stages (prefixes of the signals that belong to them):

* ``c_`` layer constants (products of geometry fields), registered every cycle;
* ``p_`` position: the output position to walk next and its window origin ``oy * s - p``;
* ``q_`` the position's in-range tap counts and first pixel and weight addresses;
* ``w_`` walker: issues one pixel read and one weight read per tap (``c``, ``ky``, ``kx``
  ascending, ``kx`` fastest);
* ``r_`` the read data is valid: the ``lanes`` products, registered;
* ``a_`` accumulate: ``acc = (first ? bias : acc) + product``; the position's last tap
  writes ``acc`` to the bank.

Cycle cost (the cycle model relies on it). Counting the cycle that samples ``start`` as the
first and the cycle of the one-cycle ``done`` strobe as the last, a run takes exactly

    ``OVERHEAD + sum over output positions (oy, ox) of max(1, C * n_y(oy) * n_x(ox))``

cycles, ``OVERHEAD = 6``, where ``n_y(oy) = min(K_h, in_h - oy * s_h + p_h) - max(0, p_h -
oy * s_h)`` is the number of kernel rows of output row ``oy`` inside the image (and ``n_x``
likewise; a negative count is 0). When every window holds at least one pixel this is
``6 + C * (sum over oy of n_y(oy)) * (sum over ox of n_x(ox))``; a linear layer costs
``6 + C * H * W``. :func:`run_cycles` computes it. Nothing stalls the block.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .interfaces import RowPortSignature, WordReadSignature, row_layout
from .pe_array import WeightReadSignature
from .tap_generator import STRIDE_BITS, geometry_layout

__all__ = ["OVERHEAD", "ReferenceMAC", "run_cycles"]

#: Cycles of a run besides one per visited tap (see the module docstring).
OVERHEAD = 6


def _axis_taps(out, kernel, stride, pad, size):
    """In-range kernel rows (or columns) per output row (or column) along one axis."""
    counts = []
    for o in range(out):
        origin = o * stride - pad
        counts.append(max(0, min(kernel, size - origin) - max(0, -origin)))
    return counts


def run_cycles(geometry, in_channels):
    """Exact cycles of one run, from the ``start`` cycle to the ``done`` cycle inclusive.

    ``geometry`` is a dict with the fields of :func:`~.tap_generator.geometry_layout` (the
    value given to the ``geometry`` port).
    """
    g = geometry
    if g["linear"]:
        return OVERHEAD + max(1, in_channels * g["in_h"] * g["in_w"])
    rows = _axis_taps(g["out_h"], g["kernel_h"], g["stride_h"], g["pad_h"], g["in_h"])
    cols = _axis_taps(g["out_w"], g["kernel_w"], g["stride_w"], g["pad_w"], g["in_w"])
    return OVERHEAD + sum(max(1, in_channels * ny * nx) for ny in rows for nx in cols)


class ReferenceMAC(wiring.Component):
    """Compute one channel group of a direct-encoded conv2d or linear layer into a bank.

    ``geometry``, ``in_channels`` and ``bias`` must be stable from the cycle ``start`` is
    high until ``done``. The pixel and weight memories are owned by the top level; only
    the write side of ``bank`` is used (``r_en`` is 0), each position's row is written
    exactly once, in position order, so the bank needs no clearing first.

    Parameters
    ----------
    lanes : int
        Lanes of a row (lane ``i`` is output channel ``group * lanes + i``).
    input_bits : int
        Width of an unsigned pixel.
    weight_bits : int
        Width of a signed weight.
    psum_bits : int
        Width of a signed partial sum (the bank's values); at least ``weight_bits``.
    addr_bits : int
        Width of a bank address (an output position).
    pixel_addr_bits : int
        Address width of the input image memory.
    weight_addr_bits : int
        Address width of the weight memory.
    coord_bits : int
        As for the tap generator's geometry (sizes are ``coord_bits + 1`` wide).
    channel_bits : int
        Width of ``in_channels``.

    Members
    -------
    geometry : In(geometry_layout(coord_bits=coord_bits, weight_addr_bits=weight_addr_bits))
        The layer's geometry, the tap generator's struct; ``out_h * out_w >= 1``.
    in_channels : In(channel_bits)
        Input channels ``C`` (at least 1).
    bias : In(row_layout(psum_bits, lanes))
        The group's bias, one value per lane.
    pixels : Out(WordReadSignature(addr_bits=pixel_addr_bits, data_shape=unsigned(input_bits)))
        Read port of the input image memory, one pixel per word.
    weights : Out(WeightReadSignature(weight_addr_bits, weight_bits, lanes))
        Read port of the weight memory.
    bank : Out(RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes))
        The partial-sum bank; written, never read.
    start : In(1)
        Begins a run; ignored while ``busy``.
    busy : Out(1)
        High from the cycle after ``start`` to the ``done`` cycle inclusive.
    done : Out(1)
        One-cycle strobe after the last row's write.

    Raises
    ------
    TypeError
        If a parameter is not a positive integer.
    ValueError
        If ``psum_bits < weight_bits``.
    """

    def __init__(self, *, lanes, input_bits, weight_bits, psum_bits, addr_bits,
                 pixel_addr_bits, weight_addr_bits, coord_bits, channel_bits):
        for value, what in ((lanes, "Lane count"), (input_bits, "Input width"),
                            (weight_bits, "Weight width"), (psum_bits, "Partial-sum width"),
                            (addr_bits, "Address width"),
                            (pixel_addr_bits, "Pixel address width"),
                            (weight_addr_bits, "Weight address width"),
                            (coord_bits, "Coordinate width"), (channel_bits, "Channel width")):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TypeError(f"{what} must be a positive integer, not {value!r}")
        if psum_bits < weight_bits:
            raise ValueError(f"Partial-sum width must be at least the weight width "
                             f"({weight_bits}), not {psum_bits!r}")
        self._lanes = lanes
        self._input_bits = input_bits
        self._weight_bits = weight_bits
        self._psum_bits = psum_bits
        self._addr_bits = addr_bits
        self._pixel_addr_bits = pixel_addr_bits
        self._weight_addr_bits = weight_addr_bits
        self._coord_bits = coord_bits
        self._channel_bits = channel_bits
        super().__init__({
            "geometry": In(geometry_layout(coord_bits=coord_bits,
                                           weight_addr_bits=weight_addr_bits)),
            "in_channels": In(channel_bits),
            "bias": In(row_layout(psum_bits, lanes)),
            "pixels": Out(WordReadSignature(addr_bits=pixel_addr_bits,
                                            data_shape=unsigned(input_bits))),
            "weights": Out(WeightReadSignature(weight_addr_bits=weight_addr_bits,
                                               weight_bits=weight_bits, lanes=lanes)),
            "bank": Out(RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes)),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
        })

    @property
    def lanes(self):
        return self._lanes

    @property
    def input_bits(self):
        return self._input_bits

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
    def pixel_addr_bits(self):
        return self._pixel_addr_bits

    @property
    def weight_addr_bits(self):
        return self._weight_addr_bits

    @property
    def coord_bits(self):
        return self._coord_bits

    @property
    def channel_bits(self):
        return self._channel_bits

    def _axis(self, m, name, origin, kernel, size):
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
        size = self._coord_bits + 1
        lanes = self._lanes
        # A window origin o * s - p: from -(2**coord_bits) up to (2**size) * MAX_STRIDE.
        origin_shape = signed(size + STRIDE_BITS + 1)

        # The geometry the walk uses: a linear layer is an H x W kernel on an H x W image.
        kernel_h = Mux(g.linear, g.in_h, g.kernel_h)
        kernel_w = Mux(g.linear, g.in_w, g.kernel_w)
        stride_h = Mux(g.linear, 1, g.stride_h)
        stride_w = Mux(g.linear, 1, g.stride_w)
        pad_h = Mux(g.linear, 0, g.pad_h)
        pad_w = Mux(g.linear, 0, g.pad_w)
        out_h = Mux(g.linear, 1, g.out_h)
        out_w = Mux(g.linear, 1, g.out_w)

        # c_: products of geometry fields, first used by the walker two cycles after start.
        c_taps = Signal(2 * size)
        c_area = Signal(2 * size)
        m.d.sync += [c_taps.eq(kernel_h * kernel_w), c_area.eq(g.in_h * g.in_w)]

        running = Signal()
        launch = Signal()
        m.d.comb += [launch.eq(self.start & ~running), self.busy.eq(running)]

        # p_: output positions in raster order, one per cycle as the next stage takes them.
        p_valid = Signal()
        p_oy, p_ox = Signal(size), Signal(size)
        p_iy0, p_ix0 = Signal(origin_shape), Signal(origin_shape)
        p_out = Signal(self._addr_bits)
        p_final = Signal()
        m.d.comb += p_final.eq((p_oy == out_h - 1) & (p_ox == out_w - 1))

        # q_: the position's in-range tap counts and first addresses (two small multiplies).
        q_valid, q_taps, q_final = Signal(), Signal(), Signal()
        q_out = Signal(self._addr_bits)
        q_ny1, q_nx1 = Signal(size), Signal(size)
        q_pixel = Signal(self._pixel_addr_bits)
        q_weight = Signal(self._weight_addr_bits)

        # w_: the tap walker.
        w_valid, w_taps, w_final, w_first = Signal(), Signal(), Signal(), Signal()
        w_out = Signal(self._addr_bits)
        w_ny1, w_nx1 = Signal(size), Signal(size)
        w_y_left, w_x_left = Signal(size), Signal(size)
        w_c_left = Signal(self._channel_bits)
        w_pixel, w_pixel_row, w_pixel_chan = (Signal(self._pixel_addr_bits) for _ in range(3))
        w_weight, w_weight_row, w_weight_chan = (Signal(self._weight_addr_bits)
                                                 for _ in range(3))
        w_last = Signal()
        m.d.comb += w_last.eq(~w_taps | ((w_x_left == 0) & (w_y_left == 0) & (w_c_left == 0)))

        w_load = ~w_valid | w_last
        q_load = ~q_valid | w_load
        p_move = p_valid & q_load

        with m.If(launch):
            m.d.sync += [
                running.eq(1), p_valid.eq(1), p_oy.eq(0), p_ox.eq(0),
                p_iy0.eq(-pad_h), p_ix0.eq(-pad_w), p_out.eq(0),
            ]
        with m.Elif(p_move):
            m.d.sync += p_out.eq(p_out + 1)
            with m.If(p_final):
                m.d.sync += p_valid.eq(0)
            with m.Elif(p_ox == out_w - 1):
                m.d.sync += [p_ox.eq(0), p_ix0.eq(-pad_w), p_oy.eq(p_oy + 1),
                             p_iy0.eq(p_iy0 + stride_h)]
            with m.Else():
                m.d.sync += [p_ox.eq(p_ox + 1), p_ix0.eq(p_ix0 + stride_w)]

        iy_first, ky_first, ny = self._axis(m, "q_y", p_iy0, kernel_h, g.in_h)
        ix_first, kx_first, nx = self._axis(m, "q_x", p_ix0, kernel_w, g.in_w)
        with m.If(q_load):
            m.d.sync += [
                q_valid.eq(p_valid),
                q_taps.eq((ny > 0) & (nx > 0) & (self.in_channels != 0)),
                q_final.eq(p_final), q_out.eq(p_out),
                q_ny1.eq(ny - 1), q_nx1.eq(nx - 1),
                q_pixel.eq(iy_first * g.in_w + ix_first),
                q_weight.eq(g.weight_base + ky_first * kernel_w + kx_first),
            ]

        with m.If(w_load):
            m.d.sync += [
                w_valid.eq(q_valid), w_taps.eq(q_taps), w_final.eq(q_final), w_first.eq(1),
                w_out.eq(q_out), w_ny1.eq(q_ny1), w_nx1.eq(q_nx1),
                w_y_left.eq(q_ny1), w_x_left.eq(q_nx1), w_c_left.eq(self.in_channels - 1),
                w_pixel.eq(q_pixel), w_pixel_row.eq(q_pixel), w_pixel_chan.eq(q_pixel),
                w_weight.eq(q_weight), w_weight_row.eq(q_weight), w_weight_chan.eq(q_weight),
            ]
        with m.Else():
            m.d.sync += w_first.eq(0)
            with m.If(w_x_left != 0):
                m.d.sync += [w_x_left.eq(w_x_left - 1), w_pixel.eq(w_pixel + 1),
                             w_weight.eq(w_weight + 1)]
            with m.Elif(w_y_left != 0):
                next_pixel = w_pixel_row + g.in_w
                next_weight = w_weight_row + kernel_w
                m.d.sync += [w_y_left.eq(w_y_left - 1), w_x_left.eq(w_nx1),
                             w_pixel.eq(next_pixel), w_pixel_row.eq(next_pixel),
                             w_weight.eq(next_weight), w_weight_row.eq(next_weight)]
            with m.Else():
                next_pixel = w_pixel_chan + c_area
                next_weight = w_weight_chan + c_taps
                m.d.sync += [w_c_left.eq(w_c_left - 1), w_y_left.eq(w_ny1), w_x_left.eq(w_nx1),
                             w_pixel.eq(next_pixel), w_pixel_row.eq(next_pixel),
                             w_pixel_chan.eq(next_pixel),
                             w_weight.eq(next_weight), w_weight_row.eq(next_weight),
                             w_weight_chan.eq(next_weight)]
        m.d.comb += [
            self.pixels.addr.eq(w_pixel), self.pixels.en.eq(w_valid & w_taps),
            self.weights.addr.eq(w_weight), self.weights.en.eq(w_valid & w_taps),
        ]

        # r_: the read data of the tap issued in the previous cycle; multiply, register.
        r_valid, r_taps, r_first, r_last, r_final = (Signal() for _ in range(5))
        r_out = Signal(self._addr_bits)
        m.d.sync += [
            r_valid.eq(w_valid), r_taps.eq(w_taps), r_first.eq(w_first),
            r_last.eq(w_last), r_final.eq(w_final), r_out.eq(w_out),
        ]
        product_shape = signed(self._input_bits + 1 + self._weight_bits)
        a_valid, a_first, a_last, a_final = (Signal() for _ in range(4))
        a_out = Signal(self._addr_bits)
        a_products = [Signal(product_shape, name=f"a_product{i}") for i in range(lanes)]
        m.d.sync += [
            a_valid.eq(r_valid), a_first.eq(r_first), a_last.eq(r_last),
            a_final.eq(r_final), a_out.eq(r_out),
        ]
        for i in range(lanes):
            # A tap-free position still passes through, adding nothing to its bias.
            m.d.sync += a_products[i].eq(
                Mux(r_taps, self.pixels.data * self.weights.data[i], 0))

        # a_: accumulate; the last tap of a position writes its row.
        acc = Signal(row_layout(self._psum_bits, lanes))
        total = Signal(row_layout(self._psum_bits, lanes))
        for i in range(lanes):
            m.d.comb += total[i].eq(Mux(a_first, self.bias[i], acc[i]) + a_products[i])
        with m.If(a_valid):
            m.d.sync += acc.eq(total)
        m.d.comb += [
            self.bank.r_en.eq(0), self.bank.r_addr.eq(0),
            self.bank.w_en.eq(a_valid & a_last), self.bank.w_addr.eq(a_out),
            self.bank.w_data.eq(total),
        ]
        m.d.sync += self.done.eq(a_valid & a_last & a_final)
        with m.If(self.done):
            m.d.sync += running.eq(0)
        return m
