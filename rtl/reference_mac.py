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

* ``c_``, ``p_``, ``q_``, ``w_`` the window walker (``rtl/window_walker.py``, shared with the
  PIM block): layer constants, output positions, in-range tap counts and first addresses,
  and one pixel read and one weight read per tap (``c``, ``ky``, ``kx`` ascending, ``kx``
  fastest), issued every cycle;
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

from amaranth.hdl import Module, Mux, Signal, signed

from .first_layer import FirstLayerBlock, FirstLayerSignature
from .window_walker import axis_taps

__all__ = ["OVERHEAD", "ReferenceMAC", "run_cycles"]

#: Cycles of a run besides one per visited tap (see the module docstring).
OVERHEAD = 6


def run_cycles(geometry, in_channels):
    """Exact cycles of one run, from the ``start`` cycle to the ``done`` cycle inclusive.

    ``geometry`` is a dict with the fields of :func:`~.tap_generator.geometry_layout` (the
    value given to the ``geometry`` port).
    """
    g = geometry
    if g["linear"]:
        return OVERHEAD + max(1, in_channels * g["in_h"] * g["in_w"])
    rows = axis_taps(g["out_h"], g["kernel_h"], g["stride_h"], g["pad_h"], g["in_h"])
    cols = axis_taps(g["out_w"], g["kernel_w"], g["stride_w"], g["pad_w"], g["in_w"])
    return OVERHEAD + sum(max(1, in_channels * ny * nx) for ny in rows for nx in cols)


class ReferenceMAC(FirstLayerBlock):
    """Compute one channel group of a direct-encoded conv2d or linear layer into a bank.

    The ports and their contract are :class:`~.first_layer.FirstLayerSignature`'s; the cost
    is :func:`run_cycles`.

    Parameters
    ----------
    lanes, input_bits, weight_bits, psum_bits, addr_bits, pixel_addr_bits, weight_addr_bits,
    coord_bits, channel_bits : int
        As for :class:`~.first_layer.FirstLayerSignature`.

    Members
    -------
    geometry, in_channels, bias, pixels, weights, bank, start, busy, done
        As for :class:`~.first_layer.FirstLayerSignature`.

    Raises
    ------
    TypeError, ValueError
        As for :class:`~.first_layer.FirstLayerSignature`.
    """

    def __init__(self, *, lanes, input_bits, weight_bits, psum_bits, addr_bits,
                 pixel_addr_bits, weight_addr_bits, coord_bits, channel_bits):
        super().__init__(FirstLayerSignature(
            lanes=lanes, input_bits=input_bits, weight_bits=weight_bits, psum_bits=psum_bits,
            addr_bits=addr_bits, pixel_addr_bits=pixel_addr_bits,
            weight_addr_bits=weight_addr_bits, coord_bits=coord_bits,
            channel_bits=channel_bits))

    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        m.submodules.walker = walker = self.walker(shift_add=False)

        running = Signal()
        launch = Signal()
        m.d.comb += [launch.eq(self.start & ~running), self.busy.eq(running)]
        with m.If(launch):
            m.d.sync += running.eq(1)

        # w_: the walker issues one tap a cycle (a tap-free position takes one cycle too).
        m.d.comb += [
            walker.geometry.eq(self.geometry), walker.in_channels.eq(self.in_channels),
            walker.start.eq(launch), walker.issue.eq(1),
            self.pixels.addr.eq(walker.pixel_addr),
            self.pixels.en.eq(walker.valid & walker.taps),
            self.weights.addr.eq(walker.weight_addr),
            self.weights.en.eq(walker.valid & walker.taps),
        ]

        # r_: the read data of the tap issued in the previous cycle; multiply, register.
        r_valid, r_taps, r_first, r_last, r_final = (Signal() for _ in range(5))
        r_out = Signal(self.addr_bits)
        m.d.sync += [
            r_valid.eq(walker.valid), r_taps.eq(walker.taps), r_first.eq(walker.first),
            r_last.eq(walker.last), r_final.eq(walker.final), r_out.eq(walker.position),
        ]
        product_shape = signed(self.input_bits + 1 + self.weight_bits)
        a_valid, a_first, a_last, a_final = (Signal() for _ in range(4))
        a_out = Signal(self.addr_bits)
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
        self.write_sums(m, valid=a_valid, first=a_first, last=a_last, final=a_final, out=a_out,
                        addends=a_products, running=running)
        return m
