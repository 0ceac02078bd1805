"""AXI4-Stream transmitter for result packets (``boards/readout.py``'s 32-bit words).

One register stage between the read-out and the bus: ``tvalid``, ``tdata`` and ``tlast``
come from flip-flops, so the bus sees no combinational path from inside the shell, and a
word is accepted from ``i_stream`` whenever the register is empty or being emptied.
``tkeep`` is all ones (every beat is a whole word), as the AXI DMA's S2MM channel expects.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import axi4_stream_signature
from .readout import word_layout

__all__ = ["ResultStreamOut"]


class ResultStreamOut(wiring.Component):
    """32-bit word stream -> AXI4-Stream master with one register stage.

    Members
    -------
    i_stream : In(stream.Signature(word_layout))
    axis : Out(axi4_stream_signature(data_width=32))
    """

    i_stream: In(stream.Signature(word_layout))
    axis: Out(axi4_stream_signature(data_width=32))

    def elaborate(self, platform):
        m = Module()
        axis, inp = self.axis, self.i_stream
        take = ~axis.tvalid | axis.tready
        m.d.comb += [inp.ready.eq(take), axis.tkeep.eq(0b1111)]
        with m.If(take):
            m.d.sync += [axis.tvalid.eq(inp.valid), axis.tdata.eq(inp.payload.data),
                         axis.tlast.eq(inp.payload.last)]
        return m
