# amaranth: UnusedElaboratable=no
"""MaxPoolPass: pooled bitmap words vs the golden max-pool, fed by an EventScanner or by a
stalling producer, and the exact cycle cost."""

import itertools

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In

from rtl_models import run_sim, vcd_file
from spikeforge.golden.network import Layer, conv_output_size
from spikeforge.golden.synapse import maxpool2d
from spikeforge.rtl.event_scanner import EventScanner
from spikeforge.rtl.maxpool import MaxPoolPass, pass_cycles, scan_pool_cycles, windows
from spikeforge.sim.streams import stream_put_all

PARAMS = {"word_addr_bits": 9, "channel_bits": 6, "coord_bits": 4, "group_bits": 3}
GARBAGE = 0x5A5A5A5A


class PoolHarness(wiring.Component):
    """A MaxPoolPass on an output bitmap (``MemoryData``: preload and peek), fed either by
    the test (``i_stream``) or by an EventScanner on an input bitmap, started together."""

    def __init__(self, *, lanes, out_words, in_words=None):
        self.pool = MaxPoolPass(lanes=lanes, **PARAMS)
        self.out_bitmap = memory.MemoryData(shape=lanes, depth=len(out_words), init=out_words)
        members = dict(self.pool.signature.members)
        self._in_words = in_words
        if in_words is None:
            self.scanner = None
        else:
            self.scanner = EventScanner(lanes=lanes, word_addr_bits=PARAMS["word_addr_bits"],
                                        channel_bits=PARAMS["channel_bits"],
                                        coord_bits=PARAMS["coord_bits"], position_bits=9,
                                        group_bits=PARAMS["group_bits"])
            del members["i_stream"]
            members["scan"] = In(self.scanner.signature.members["params"].shape)
        super().__init__({name: members[name] for name in members
                          if name not in ("read", "write")})

    def elaborate(self, platform):
        m = Module()
        m.submodules.pool = pool = self.pool
        m.d.comb += [pool.params.eq(self.params), pool.start.eq(self.start),
                     self.busy.eq(pool.busy), self.done.eq(pool.done)]
        if self.scanner is None:
            wiring.connect(m, source=wiring.flipped(self.i_stream), sink=pool.i_stream)
        else:
            m.submodules.scanner = scanner = self.scanner
            wiring.connect(m, events=scanner.o_stream, pool=pool.i_stream)
            m.d.comb += [scanner.params.eq(self.scan), scanner.start.eq(self.start)]
            m.submodules.in_bitmap = in_bitmap = memory.Memory(
                shape=self.pool.lanes, depth=len(self._in_words), init=self._in_words)
            port = in_bitmap.read_port()
            m.d.comb += [port.addr.eq(scanner.mem.addr), port.en.eq(scanner.mem.en),
                         scanner.mem.data.eq(port.data)]
        m.submodules.out_bitmap = out_bitmap = memory.Memory(data=self.out_bitmap)
        read, write = out_bitmap.read_port(), out_bitmap.write_port()
        m.d.comb += [read.addr.eq(pool.read.addr), read.en.eq(pool.read.en),
                     pool.read.data.eq(read.data), write.addr.eq(pool.write.addr),
                     write.en.eq(pool.write.en), write.data.eq(pool.write.data)]
        return m


def pack(spikes, lanes):
    """One timestep's (C, H, W) spikes as bitmap words: position-major, groups inner."""
    channels, height, width = spikes.shape
    groups = -(-channels // lanes)
    words = []
    for y in range(height):
        for x in range(width):
            for g in range(groups):
                words.append(sum(int(spikes[c, y, x]) << (c - g * lanes)
                                 for c in range(g * lanes, min(channels, (g + 1) * lanes))))
    return words


def pool_layer(in_shape, kernel, stride):
    out_shape = (in_shape[0],) + tuple(conv_output_size(in_shape[1 + i], kernel[i], stride[i], 0)
                                       for i in range(2))
    return Layer(name="pool", type="maxpool2d", inputs=("x",), output="spikes",
                 in_shape=tuple(in_shape), out_shape=out_shape, kernel=tuple(kernel),
                 stride=tuple(stride), padding=(0, 0))


def pool_params(layer, lanes, timestep):
    groups = -(-layer.in_shape[0] // lanes)
    out_h, out_w = layer.out_shape[1:]
    return {"kernel_h": layer.kernel[0], "kernel_w": layer.kernel[1],
            "stride_h": layer.stride[0], "stride_w": layer.stride[1],
            "out_h": out_h, "out_w": out_w, "groups": groups,
            "word_base": timestep * out_h * out_w * groups}


def scanner_events(spikes, lanes):
    """The scanner's order: per word, its events' (c, y, x), lowest lane first."""
    channels, height, width = spikes.shape
    groups = -(-channels // lanes)
    return [[(c, y, x) for c in range(g * lanes, min(channels, (g + 1) * lanes))
             if spikes[c, y, x]]
            for y in range(height) for x in range(width) for g in range(groups)]


def run_pool(lanes, spikes, layer, *, timestep=1, scanner=True, pause=(0,), tmp_path=None,
             name="maxpool"):
    """Pool one timestep; returns (pooled (C, Ho, Wo), cycles, untouched words intact)."""
    params = pool_params(layer, lanes, timestep)
    words = params["out_h"] * params["out_w"] * params["groups"]
    out_words = [GARBAGE & ((1 << lanes) - 1)] * ((timestep + 2) * words)
    in_words = pack(spikes, lanes)
    dut = PoolHarness(lanes=lanes, out_words=out_words,
                      in_words=[0] * 5 + in_words if scanner else None)
    result = {}

    async def control(ctx):
        ctx.set(dut.params, params)
        if scanner:
            height, width = spikes.shape[1:]
            ctx.set(dut.scan, {"first_word": 5, "positions": height * width,
                               "groups": params["groups"], "width": width})
        ctx.set(dut.start, 1)
        for cycle in range(1, 20_000):
            _, _, done = await ctx.tick().sample(dut.done)
            ctx.set(dut.start, 0)
            if done:
                break
        await ctx.tick()
        result["cycles"] = cycle
        got = [ctx.get(dut.out_bitmap[i]) for i in range(len(out_words))]
        base = params["word_base"]
        result["intact"] = got[:base] + got[base + words:] == out_words[:base] + out_words[
            base + words:]
        pooled = np.zeros(layer.out_shape, dtype=np.uint8)
        positions = params["out_h"] * params["out_w"]
        for c in range(layer.out_shape[0]):
            g, lane = divmod(c, lanes)
            for pos in range(positions):
                bit = (got[base + pos * params["groups"] + g] >> lane) & 1
                pooled[c, pos // params["out_w"], pos % params["out_w"]] = bit
        result["pooled"] = pooled

    async def producer(ctx):
        events = [e for word in scanner_events(spikes, lanes) for e in word]
        payloads = ([{"channel": c, "y": y, "x": x, "end": 0} for c, y, x in events]
                    + [{"channel": 0, "y": 0, "x": 0, "end": 1}])
        await stream_put_all(ctx, dut.i_stream, payloads, pause=pause)

    run_sim(dut, control, *([] if scanner else [producer]), vcd=vcd_file(tmp_path, name))
    return result


def check(lanes, spikes, layer, **kwargs):
    result = run_pool(lanes, spikes, layer, **kwargs)
    np.testing.assert_array_equal(result["pooled"], maxpool2d(spikes[None], layer)[0])
    assert result["intact"]
    return result


def random_spikes(seed, shape, density):
    return (np.random.default_rng(seed).random(shape) < density).astype(np.uint8)


def test_init():
    dut = MaxPoolPass(lanes=4, **PARAMS)
    assert dut.lanes == 4
    assert set(dut.signature.members.keys()) == {"params", "start", "busy", "done", "i_stream",
                                                 "read", "write"}


@pytest.mark.parametrize("param, message", [
    ("lanes", "Lane count"), ("word_addr_bits", "Word address width"),
    ("channel_bits", "Channel width"), ("coord_bits", "Coordinate width"),
    ("group_bits", "Group count width")])
@pytest.mark.parametrize("value", [0, 2.0, True])
def test_init_wrong_width(param, message, value):
    with pytest.raises(TypeError, match=rf"^{message} must be a positive integer, not {value!r}$"):
        MaxPoolPass(**{"lanes": 4, **PARAMS, param: value})


def test_init_wrong_channel_bits():
    with pytest.raises(ValueError, match=r"^Channel width 2 cannot number 5 lanes$"):
        MaxPoolPass(**{**PARAMS, "lanes": 5, "channel_bits": 2})


@pytest.mark.parametrize("lanes, channels", [(4, 6), (16, 20)])
@pytest.mark.parametrize("kernel, stride", [((2, 2), (2, 2)), ((3, 3), (2, 2))])
def test_sim_scanner_matches_golden(lanes, channels, kernel, stride, tmp_path):
    """Scanner-driven, odd map sizes (rows and columns in no window for k2 s2); exact cost."""
    layer = pool_layer((channels, 7, 9), kernel, stride)
    spikes = random_spikes(lanes + kernel[0], layer.in_shape, 0.3)
    result = check(lanes, spikes, layer, tmp_path=tmp_path, name=f"pool_{lanes}_{kernel[0]}")
    params = pool_params(layer, lanes, 1)
    words = params["out_h"] * params["out_w"] * params["groups"]
    scan = [[(y, x) for _, y, x in word] for word in scanner_events(spikes, lanes)]
    assert result["cycles"] == scan_pool_cycles(words, scan, params)


@pytest.mark.parametrize("kernel, stride, lanes", [
    ((3, 2), (1, 3), 4),   # overlapping rows, gaps between columns, non-square
    ((2, 3), (3, 1), 5),   # a lane count that is not a power of two
    ((3, 3), (3, 3), 4),   # every window disjoint, stride 3 (the divider)
])
def test_sim_geometries(kernel, stride, lanes):
    layer = pool_layer((7, 8, 7), kernel, stride)
    spikes = random_spikes(sum(kernel) + lanes, layer.in_shape, 0.35)
    check(lanes, spikes, layer)


@pytest.mark.parametrize("pause", [(1, 0), (0, 1, 1), (1, 1, 1, 0)])
@pytest.mark.parametrize("kernel", [(2, 2), (3, 3)])
def test_sim_back_pressure(pause, kernel):
    """A producer with bubbles; the pass stalls it while an event has several windows."""
    layer = pool_layer((6, 6, 7), kernel, (2, 2))
    spikes = random_spikes(len(pause) + kernel[0], layer.in_shape, 0.4)
    result = check(4, spikes, layer, timestep=0, scanner=False, pause=pause)
    # The documented recurrence with the producer's offers: after each transfer (and from
    # cycle 0) it idles while the pause pattern says 1, then offers.
    params = pool_params(layer, 4, 0)
    events = [e for word in scanner_events(spikes, 4) for e in word]
    pauses = itertools.cycle(pause)
    idles = [sum(1 for _ in itertools.takewhile(bool, pauses)) for _ in range(len(events) + 1)]
    costs = [max(1, windows(y, x, params)) for _, y, x in events] + [1]
    words = params["out_h"] * params["out_w"] * params["groups"]

    def offers(i, t_prev):
        return idles[i] + (0 if t_prev is None else t_prev + 1)

    assert result["cycles"] == pass_cycles(words, offers, costs)


def test_sim_dense_map_hazards():
    """Every input spikes: consecutive events hit the same word (lanes of one word, and the
    overlapping windows of neighbours), so the read-modify-write must forward."""
    layer = pool_layer((8, 5, 5), (3, 3), (1, 1))
    check(4, np.ones(layer.in_shape, dtype=np.uint8), layer, timestep=2)


def test_sim_empty_timestep_clears():
    layer = pool_layer((5, 6, 6), (2, 2), (2, 2))
    spikes = np.zeros(layer.in_shape, dtype=np.uint8)
    result = check(4, spikes, layer)
    params = pool_params(layer, 4, 1)
    words = params["out_h"] * params["out_w"] * params["groups"]
    scan_words = 6 * 6 * params["groups"]
    assert result["cycles"] == scan_pool_cycles(words, [[]] * scan_words, params)


def test_sim_cost_with_all_events_offered():
    """A producer that always offers: ``words + 6 + sum over events of max(1, windows)``."""
    layer = pool_layer((4, 7, 7), (3, 3), (2, 2))
    spikes = random_spikes(11, layer.in_shape, 0.3)
    params = pool_params(layer, 4, 0)
    result = check(4, spikes, layer, timestep=0, scanner=False)
    events = [e for word in scanner_events(spikes, 4) for e in word]
    costs = [max(1, windows(y, x, params)) for _, y, x in events]
    words = params["out_h"] * params["out_w"] * params["groups"]
    assert result["cycles"] == words + 6 + sum(costs)
    assert result["cycles"] == pass_cycles(words, [0] * (len(events) + 1), costs + [1])


def test_verilog_export():
    text = verilog.convert(MaxPoolPass(lanes=5, **PARAMS), name="maxpool", emit_src=False)
    assert "module maxpool" in text
