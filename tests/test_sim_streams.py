"""The cycle-bounded stream helpers: in-order delivery under back-pressure, and a bounded hang."""

import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from rtl_models import run_sim
from spikeforge.sim.streams import StreamTimeout, stream_get, stream_get_all, stream_put_all

LAYOUT = data.StructLayout({"a": unsigned(4), "row": data.ArrayLayout(signed(8), 2)})


class RegisterSlice(wiring.Component):
    """A one-deep stream register: the smallest design with real back-pressure."""

    i_stream: In(stream.Signature(LAYOUT))
    o_stream: Out(stream.Signature(LAYOUT))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i_stream.ready.eq(self.o_stream.ready | ~self.o_stream.valid)
        with m.If(self.i_stream.ready):
            m.d.sync += [self.o_stream.valid.eq(self.i_stream.valid),
                         self.o_stream.payload.eq(self.i_stream.payload)]
        return m


@pytest.mark.parametrize("put_pause, get_pause", [((0,), (0,)), ((0, 1, 1), (1, 0)),
                                                  ((1,) * 3 + (0,), (0,))])
def test_payloads_arrive_in_order_under_back_pressure(put_pause, get_pause):
    dut = RegisterSlice()
    sent = [{"a": k % 16, "row": [k, -k]} for k in range(12)]
    received = []

    async def producer(ctx):
        await stream_put_all(ctx, dut.i_stream, sent, pause=put_pause)

    async def consumer(ctx):
        received.extend(await stream_get_all(ctx, dut.o_stream, len(sent), pause=get_pause))

    run_sim(dut, producer, consumer)
    assert [(p.a, p.row[0], p.row[1]) for p in received] == \
        [(s["a"], s["row"][0], s["row"][1]) for s in sent]


def test_a_stream_that_never_delivers_times_out():
    dut = RegisterSlice()

    async def consumer(ctx):
        await stream_get(ctx, dut.o_stream, timeout=50)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(consumer)
    with pytest.raises(StreamTimeout, match=r"o_stream: no payload within 50 cycles"):
        sim.run()
