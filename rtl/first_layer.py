"""The port set of a first-layer block, shared by the reference MAC and the digital PIM.

A direct-encoded first layer's current is computed by :class:`~.reference_mac.ReferenceMAC`
or, with ``AcceleratorConfig(first_layer="pim")``, by
:class:`~.pim_first_layer.PIMFirstLayer`. The PIM is a drop-in replacement: both are
:class:`FirstLayerBlock`\\ s with the same :class:`FirstLayerSignature` (equal for equal
parameters), and both walk the image with the same :class:`~.window_walker.WindowWalker`.
Only their cycle costs differ.
"""

from amaranth.hdl import Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .interfaces import RowPortSignature, WordReadSignature, row_layout
from .pe_array import WeightReadSignature
from .tap_generator import geometry_layout
from .checks import check_int
from .window_walker import WindowWalker

__all__ = ["FirstLayerBlock", "FirstLayerSignature"]

#: The parameters of a :class:`FirstLayerSignature`, in order, and their names in messages.
_PARAMETERS = (("lanes", "Lane count"), ("input_bits", "Input width"),
               ("weight_bits", "Weight width"), ("psum_bits", "Partial-sum width"),
               ("addr_bits", "Address width"), ("pixel_addr_bits", "Pixel address width"),
               ("weight_addr_bits", "Weight address width"),
               ("coord_bits", "Coordinate width"), ("channel_bits", "Channel width"))


class FirstLayerSignature(wiring.Signature):
    """The ports of a block computing one channel group of a direct-encoded layer into a bank.

    ``geometry``, ``in_channels`` and ``bias`` must be stable from the cycle ``start`` is
    high until ``done``. The pixel and weight memories are owned by the top level; only the
    write side of ``bank`` is used (``r_en`` is 0), each position's row is written exactly
    once, in position order, so the bank needs no clearing first.

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
        values = (lanes, input_bits, weight_bits, psum_bits, addr_bits, pixel_addr_bits,
                  weight_addr_bits, coord_bits, channel_bits)
        for value, (_, what) in zip(values, _PARAMETERS):
            check_int(value, what)
        if psum_bits < weight_bits:
            raise ValueError(f"Partial-sum width must be at least the weight width "
                             f"({weight_bits}), not {psum_bits!r}")
        self._parameters = {name: value for (name, _), value in zip(_PARAMETERS, values)}
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
    def parameters(self):
        """The constructor's keyword arguments (a new dict)."""
        return dict(self._parameters)

    def __eq__(self, other):
        return (type(other) is FirstLayerSignature
                and other._parameters == self._parameters)

    def __hash__(self):
        return hash(tuple(self._parameters.items()))

    def __repr__(self):
        arguments = ", ".join(f"{name}={value!r}" for name, value in self._parameters.items())
        return f"FirstLayerSignature({arguments})"


class FirstLayerBlock(wiring.Component):
    """A component with a :class:`FirstLayerSignature`, its parameters as properties.

    Parameters
    ----------
    signature : FirstLayerSignature
    """

    def __init__(self, signature):
        if not isinstance(signature, FirstLayerSignature):
            raise TypeError(f"Signature must be a FirstLayerSignature, not {signature!r}")
        super().__init__(signature)

    lanes = property(lambda self: self.signature.parameters["lanes"])
    input_bits = property(lambda self: self.signature.parameters["input_bits"])
    weight_bits = property(lambda self: self.signature.parameters["weight_bits"])
    psum_bits = property(lambda self: self.signature.parameters["psum_bits"])
    addr_bits = property(lambda self: self.signature.parameters["addr_bits"])
    pixel_addr_bits = property(lambda self: self.signature.parameters["pixel_addr_bits"])
    weight_addr_bits = property(lambda self: self.signature.parameters["weight_addr_bits"])
    coord_bits = property(lambda self: self.signature.parameters["coord_bits"])
    channel_bits = property(lambda self: self.signature.parameters["channel_bits"])

    def walker(self, *, shift_add):
        """A :class:`~.window_walker.WindowWalker` sized for this block."""
        names = ("addr_bits", "pixel_addr_bits", "weight_addr_bits", "coord_bits",
                 "channel_bits")
        return WindowWalker(shift_add=shift_add,
                            **{name: self.signature.parameters[name] for name in names})

    def write_sums(self, m, *, valid, first, last, final, out, addends, running):
        """The last stage both blocks share: add each lane's ``addends`` (what this cycle
        contributes) to the position's running sum, which starts from the bias on the
        position's ``first`` cycle; the ``last`` cycle of a position writes its row to
        ``bank`` at ``out``, and the last row of the run (``final``) strobes ``done`` one
        cycle later and clears ``running``."""
        lanes = self.lanes
        sums = Signal(row_layout(self.psum_bits, lanes))
        total = Signal(row_layout(self.psum_bits, lanes))
        for i in range(lanes):
            m.d.comb += total[i].eq(Mux(first, self.bias[i], sums[i]) + addends[i])
        with m.If(valid):
            m.d.sync += sums.eq(total)
        m.d.comb += [
            self.bank.r_en.eq(0), self.bank.r_addr.eq(0),
            self.bank.w_en.eq(valid & last), self.bank.w_addr.eq(out),
            self.bank.w_data.eq(total),
        ]
        m.d.sync += self.done.eq(valid & last & final)
        with m.If(self.done):
            m.d.sync += running.eq(0)
