"""Read-out of a finished run: output membranes, arg max and the result packet.

After ``start`` the read-out walks the output layer's neurons in the golden model's order
(channel-major: neuron ``c * positions + p``), reads each membrane row through the host read
port (``rtl/top.py`` keeps group ``g`` of the output layer at rows ``g * positions ...``;
channel ``c`` is lane ``c mod lanes`` of group ``c div lanes``), and sends the packet

``membrane[0], ..., membrane[n - 1], prediction, cycles``

on ``o_stream``, one 32-bit word each (membranes sign-extended), ``last`` on the final word.
``prediction`` is the index of the first largest membrane (``numpy.argmax``); it is also
held on the ``prediction`` port from the end of the packet to the next ``start``. A
neuron takes three cycles plus the consumer's wait.
"""

from amaranth.hdl import Array, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..rtl.host_port import HostMemory

__all__ = ["Readout", "word_layout"]

#: One word of a result packet (or of any 32-bit packet stream here).
word_layout = data.StructLayout({"data": 32, "last": 1})


class Readout(wiring.Component):
    """Output membranes -> result packet and arg max.

    Parameters
    ----------
    lanes : int
    membrane_bits : int
    addr_bits : int
        Row address width of the host port.
    data_bits : int
        Read data width of the host port (at least ``lanes * membrane_bits``).

    Members
    -------
    start : In(1)
    channels : In(16)
        Output channels (at least 1).
    positions : In(addr_bits + 1)
        Positions per output channel (at least 1; 1 for a linear layer).
    cycles : In(32)
        The cycle counter, sent as the packet's last word.
    busy : Out(1)
    done : Out(1)
        One cycle, after the last word has been taken.
    prediction : Out(16)
    r_sel, r_addr, r_en : Out
    r_data : In(data_bits)
        The host read port (data one cycle after ``r_en``).
    o_stream : Out(stream.Signature(word_layout))
    """

    def __init__(self, *, lanes, membrane_bits, addr_bits, data_bits):
        for name, value in (("Lane count", lanes), ("Membrane width", membrane_bits),
                            ("Address width", addr_bits), ("Data width", data_bits)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        if lanes * membrane_bits > data_bits:
            raise ValueError(f"Data width must hold a row of {lanes} x {membrane_bits} bits, "
                             f"not {data_bits}")
        self._lanes, self._membrane_bits = lanes, membrane_bits
        super().__init__({
            "start": In(1), "channels": In(16), "positions": In(addr_bits + 1),
            "cycles": In(32),
            "busy": Out(1), "done": Out(1), "prediction": Out(16),
            "r_sel": Out(HostMemory), "r_addr": Out(addr_bits), "r_en": Out(1),
            "r_data": In(data_bits),
            "o_stream": Out(stream.Signature(word_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, bits = self._lanes, self._membrane_bits
        out = self.o_stream
        channel = Signal(16)
        lane = Signal(range(lanes))
        position = Signal.like(self.positions)
        row_base = Signal.like(self.r_addr)
        neuron = Signal(16)
        value = Signal(signed(bits))
        best = Signal(signed(bits))
        best_index = Signal(16)
        lane_values = Array(self.r_data[i * bits:(i + 1) * bits].as_signed()
                            for i in range(lanes))
        m.d.comb += [self.r_sel.eq(HostMemory.MEMBRANES), self.r_addr.eq(row_base + position)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [channel.eq(0), lane.eq(0), position.eq(0), row_base.eq(0),
                                 neuron.eq(0)]
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += [self.busy.eq(1), self.r_en.eq(1)]
                m.next = "CAPTURE"
            with m.State("CAPTURE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += value.eq(lane_values[lane])
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.busy.eq(1), out.valid.eq(1), out.payload.data.eq(value)]
                with m.If(out.ready):
                    with m.If((neuron == 0) | (value > best)):
                        m.d.sync += [best.eq(value), best_index.eq(neuron)]
                    m.d.sync += neuron.eq(neuron + 1)
                    with m.If(position + 1 < self.positions):
                        m.d.sync += position.eq(position + 1)
                        m.next = "READ"
                    with m.Elif(channel + 1 < self.channels):
                        m.d.sync += [position.eq(0), channel.eq(channel + 1)]
                        with m.If(lane == lanes - 1):
                            m.d.sync += [lane.eq(0), row_base.eq(row_base + self.positions)]
                        with m.Else():
                            m.d.sync += lane.eq(lane + 1)
                        m.next = "READ"
                    with m.Else():
                        m.next = "PREDICTION"
            with m.State("PREDICTION"):
                m.d.comb += [self.busy.eq(1), out.valid.eq(1),
                             out.payload.data.eq(best_index)]
                with m.If(out.ready):
                    m.next = "CYCLES"
            with m.State("CYCLES"):
                m.d.comb += [self.busy.eq(1), out.valid.eq(1), out.payload.data.eq(self.cycles),
                             out.payload.last.eq(1)]
                with m.If(out.ready):
                    m.d.comb += self.done.eq(1)
                    m.d.sync += self.prediction.eq(best_index)
                    m.next = "IDLE"
        return m
