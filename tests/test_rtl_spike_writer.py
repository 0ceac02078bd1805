# amaranth: UnusedElaboratable=no
"""SpikeWriter: rows land in the documented bitmap words, and EventScanner reads them back."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.sim import Simulator

from rtl_models import run_sim
from spikeforge.rtl.event_scanner import EventScanner
from spikeforge.rtl.spike_writer import SpikeWriter
from spikeforge.sim.streams import stream_get_all, stream_put_all

WORD_ADDR_BITS = 9


class WriterAndScanner(wiring.Component):
    """Test top: SpikeWriter and EventScanner sharing one bitmap memory."""

    def __init__(self, *, lanes):
        self.writer = SpikeWriter(lanes=lanes, addr_bits=8, word_addr_bits=WORD_ADDR_BITS,
                                  group_bits=3)
        self.scanner = EventScanner(lanes=lanes, word_addr_bits=WORD_ADDR_BITS, channel_bits=8,
                                    coord_bits=5, position_bits=8, group_bits=3)
        self.bitmap = memory.Memory(shape=lanes, depth=1 << WORD_ADDR_BITS, init=[])
        w, s = self.writer.signature.members, self.scanner.signature.members
        super().__init__({  # the same members as the blocks: this top only wires them up
            "write_params": w["params"], "i_stream": w["i_stream"], "spikes": w["spikes"],
            "scan_params": s["params"], "start": s["start"], "o_stream": s["o_stream"],
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.writer = writer = self.writer
        m.submodules.scanner = scanner = self.scanner
        m.submodules.bitmap = self.bitmap
        write, read = self.bitmap.write_port(), self.bitmap.read_port()
        m.d.comb += [write.addr.eq(writer.mem.addr), write.en.eq(writer.mem.en),
                     write.data.eq(writer.mem.data),
                     read.addr.eq(scanner.mem.addr), read.en.eq(scanner.mem.en),
                     scanner.mem.data.eq(read.data),
                     writer.params.eq(self.write_params), self.spikes.eq(writer.spikes),
                     scanner.params.eq(self.scan_params), scanner.start.eq(self.start)]
        wiring.connect(m, wiring.flipped(self.i_stream), writer.i_stream)
        wiring.connect(m, scanner.o_stream, wiring.flipped(self.o_stream))
        return m


def rows_of(spikes, lanes):
    """Spike map (C, H, W) -> {group: [(position, row bits)]} as the aggregation emits them."""
    channels, height, width = spikes.shape
    groups = -(-channels // lanes)
    padded = np.zeros((groups * lanes, height * width), dtype=np.int64)
    padded[:channels] = spikes.reshape(channels, -1)
    return {g: [(p, int(sum(int(padded[g * lanes + lane, p]) << lane for lane in range(lanes))))
                for p in range(height * width)] for g in range(groups)}


@pytest.mark.parametrize("lanes, channels", [(4, 7), (16, 16), (64, 40)])
def test_sim_rows_round_trip_through_the_bitmap(lanes, channels):
    rng = np.random.default_rng(lanes + channels)
    timesteps, height, width = 2, 3, 4
    positions = height * width
    groups = -(-channels // lanes)
    spikes = (rng.random((timesteps, channels, height, width)) < 0.3).astype(np.int64)
    dut = WriterAndScanner(lanes=lanes)
    scanned, counted = {}, []

    async def writer(ctx):
        for t in range(timesteps):
            for group, rows in rows_of(spikes[t], lanes).items():
                ctx.set(dut.write_params, {"word_base": t * positions * groups + group,
                                           "groups": groups})
                await stream_put_all(ctx, dut.i_stream,
                                     [{"addr": p, "spikes": bits} for p, bits in rows],
                                     pause=(0, 1))
        for t in range(timesteps):
            events = [(c, y, x) for c, y, x in zip(*np.nonzero(spikes[t]))]
            ctx.set(dut.scan_params, {"first_word": t * positions * groups,
                                      "positions": positions, "groups": groups,
                                      "width": width})
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            payloads = await stream_get_all(ctx, dut.o_stream, len(events) + 1)
            scanned[t] = [(p.channel, p.y, p.x) for p in payloads[:-1]]
            assert payloads[-1].end == 1
            # Scan order is position-major (y, x), then channel: sort the reference likewise.
            assert scanned[t] == sorted(events, key=lambda e: (e[1], e[2], e[0]))

    async def spike_counter(ctx):
        async for _, _, count in ctx.tick().sample(dut.spikes):
            counted.append(count)

    run_sim(dut, writer, background=[spike_counter])
    assert len(scanned) == timesteps
    assert sum(counted) == int(spikes.sum())


def test_sim_words_land_at_the_documented_addresses():
    lanes, groups = 4, 3
    dut = WriterAndScanner(lanes=lanes)
    rows = [(0, 0b1010), (1, 0b0001), (2, 0b1111)]

    async def testbench(ctx):
        ctx.set(dut.write_params, {"word_base": 7, "groups": groups})
        await stream_put_all(ctx, dut.i_stream, [{"addr": a, "spikes": s} for a, s in rows])
        await ctx.tick()
        for position, bits in rows:
            assert ctx.get(dut.bitmap.data[7 + position * groups]) == bits

    run_sim(dut, testbench)


def test_init_wrong_lanes():
    with pytest.raises(TypeError, match=r"^Lane count must be a positive integer, not -1$"):
        SpikeWriter(lanes=-1, addr_bits=8, word_addr_bits=8, group_bits=2)


@pytest.mark.parametrize("lanes", [4, 16, 64])
def test_sim_fold_ors_each_channels_four_lanes(lanes):
    # Space-to-depth: lanes 4c .. 4c + 3 are channel c's 2x2 window; the word holds their OR.
    rng = np.random.default_rng(lanes)
    dut = SpikeWriter(lanes=lanes, addr_bits=8, word_addr_bits=WORD_ADDR_BITS, group_bits=3)
    rows = [int(v) for v in rng.integers(0, 1 << lanes, size=20, dtype=np.uint64)] + [0]
    seen = []

    async def testbench(ctx):
        ctx.set(dut.params, {"word_base": 5, "groups": 1, "fold": 1})
        for position, bits in enumerate(rows):
            ctx.set(dut.i_stream.valid, 1)
            ctx.set(dut.i_stream.payload, {"addr": position, "spikes": bits})
            seen.append((ctx.get(dut.mem.en), ctx.get(dut.mem.addr), ctx.get(dut.mem.data),
                         ctx.get(dut.spikes)))
            await ctx.delay(1e-8)

    sim = Simulator(dut)  # combinational: no clock
    sim.add_testbench(testbench)
    sim.run()
    for position, (bits, (enabled, address, word, count)) in enumerate(zip(rows, seen)):
        windows = [(bits >> (4 * c)) & 0xF for c in range(lanes // 4)]
        assert (enabled, address) == (1, 5 + position)
        assert word == sum(1 << c for c, window in enumerate(windows) if window)
        assert count == bin(bits).count("1")  # the layer's spikes, before the fold
