# amaranth: UnusedElaboratable=no
"""EventScanner: bitmap words -> (channel, y, x) events, in order, with an exact cycle cost."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from rtl_models import run_sim
from spikeforge.rtl.event_scanner import EventScanner, scan_params_layout
from spikeforge.sim.streams import stream_get_all

WORD_ADDR_BITS = 10


class ScannerWithBitmap(wiring.Component):
    """Test top: an EventScanner on a bitmap memory preloaded with ``words``, plus a counter
    of the clock edges from the one that samples ``start`` to the end marker's transfer."""

    def __init__(self, *, lanes, words, coord_bits=6, max_pack=0):
        self.scanner = EventScanner(lanes=lanes, word_addr_bits=WORD_ADDR_BITS, channel_bits=8,
                                    coord_bits=coord_bits, position_bits=12, group_bits=4,
                                    max_pack=max_pack)
        self._words = [int(w) for w in words]
        self._lanes = lanes
        members = self.scanner.signature.members
        super().__init__({
            "params": In(members["params"].shape),
            "start": In(1),
            "cycles": Out(16),
            "o_stream": Out(members["o_stream"].signature),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.scanner = scanner = self.scanner
        m.submodules.bitmap = bitmap = memory.Memory(shape=self._lanes,
                                                     depth=1 << WORD_ADDR_BITS, init=self._words)
        port = bitmap.read_port()
        m.d.comb += [port.addr.eq(scanner.mem.addr), port.en.eq(scanner.mem.en),
                     scanner.mem.data.eq(port.data),
                     scanner.params.eq(self.params), scanner.start.eq(self.start)]
        wiring.connect(m, scanner.o_stream, wiring.flipped(self.o_stream))
        counting = Signal()
        end_transfer = self.o_stream.valid & self.o_stream.ready & self.o_stream.payload.end
        with m.If(self.start & ~scanner.busy):
            m.d.sync += [counting.eq(1), self.cycles.eq(1)]
        with m.Elif(counting):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(end_transfer):
                m.d.sync += counting.eq(0)
        return m


def expected_events(words, first_word, positions, groups, width, lanes):
    """Reference: every set bit of the scanned words, in word order, lowest lane first."""
    events = []
    for index in range(positions * groups):
        word = int(words[first_word + index])
        position, group = divmod(index, groups)
        y, x = divmod(position, width)
        events += [(group * lanes + lane, y, x) for lane in range(lanes) if word >> lane & 1]
    return events


def expected_cycles(words, first_word, count):
    """The documented cost: 1 + sum(max(1, popcount(word))) + 1 with no back-pressure."""
    return 2 + sum(max(1, bin(int(w)).count("1")) for w in words[first_word:first_word + count])


def packed_sub_words(words, first_word, positions, lanes, pack):
    """Reference decode of a position-packed bitmap: the ``lanes >> pack`` bits of every
    position, in position order (word ``p >> pack``, slot ``p mod 2**pack``)."""
    sub = lanes >> pack
    return [int(words[first_word + (position >> pack)]) >> (position % (1 << pack)) * sub
            & (1 << sub) - 1 for position in range(positions)]


def expected_packed_events(words, first_word, positions, width, lanes, pack):
    """Reference: every set channel of every position's sub-word, lowest channel first."""
    events = []
    for position, bits in enumerate(packed_sub_words(words, first_word, positions, lanes,
                                                     pack)):
        y, x = divmod(position, width)
        events += [(channel, y, x) for channel in range(lanes >> pack) if bits >> channel & 1]
    return events


def run_scan(lanes, words, *, first_word, positions, groups, width, pause=(0,), coord_bits=6,
             max_pack=0, pack=None):
    """Scan once (``pack=None``: the params have no ``pack`` field); return (events, cycle
    counter after the end marker)."""
    dut = ScannerWithBitmap(lanes=lanes, words=words, coord_bits=coord_bits, max_pack=max_pack)
    if not pack:  # pack 0 is the unpacked layout, groups and all
        count = len(expected_events(words, first_word, positions, groups, width, lanes)) + 1
    else:
        count = len(expected_packed_events(words, first_word, positions, width, lanes, pack)) + 1
    params = {"first_word": first_word, "positions": positions, "groups": groups,
              "width": width}
    if pack is not None:
        params["pack"] = pack
    result = {}

    async def testbench(ctx):
        ctx.set(dut.params, params)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        payloads = await stream_get_all(ctx, dut.o_stream, count, pause=pause, timeout=2_000)
        assert [p.end for p in payloads] == [0] * (count - 1) + [1]
        result["events"] = [(p.channel, p.y, p.x) for p in payloads[:-1]]
        await ctx.tick()
        result["cycles"] = ctx.get(dut.cycles)

    run_sim(dut, testbench)
    return result["events"], result["cycles"]


def random_words(rng, lanes, count, density):
    bits = rng.random((count, lanes)) < density
    return [sum(1 << lane for lane in range(lanes) if row[lane]) for row in bits]


@pytest.mark.parametrize("lanes", [4, 16, 64])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
def test_sim_scan_matches_reference_and_cost(lanes, density):
    rng = np.random.default_rng(lanes * 100 + int(density * 10))
    groups, width, height = 2, 3, 4
    positions = width * height
    first_word = 5
    words = random_words(rng, lanes, first_word + positions * groups + 3, density)
    events, cycles = run_scan(lanes, words, first_word=first_word, positions=positions,
                              groups=groups, width=width)
    assert events == expected_events(words, first_word, positions, groups, width, lanes)
    assert cycles == expected_cycles(words, first_word, positions * groups)


@pytest.mark.parametrize("pause", [(1, 0), (0, 0, 1, 1, 1)])
def test_sim_back_pressure_keeps_every_event(pause):
    rng = np.random.default_rng(7)
    lanes, groups, width, positions = 16, 3, 5, 10
    words = random_words(rng, lanes, positions * groups, 0.3)
    events, _ = run_scan(lanes, words, first_word=0, positions=positions, groups=groups,
                         width=width, pause=pause)
    assert events == expected_events(words, 0, positions, groups, width, lanes)


def test_sim_map_as_wide_as_the_coordinates_allow():
    # A 4-wide map with 2-bit coordinates: x runs 0..3 and the width itself (4) needs a third
    # bit, so the width field must be one bit wider than a coordinate.
    rng = np.random.default_rng(11)
    lanes, groups, width, positions = 4, 1, 4, 12
    words = random_words(rng, lanes, positions * groups, 0.5)
    events, _ = run_scan(lanes, words, first_word=0, positions=positions, groups=groups,
                         width=width, coord_bits=2)
    assert events == expected_events(words, 0, positions, groups, width, lanes)
    assert max(y for _, y, _ in events) == 2


def random_packed_words(rng, lanes, count, pack):
    """Words whose sub-words are, at random, empty, sparse, dense or full."""
    sub = lanes >> pack
    words = []
    for _ in range(count):
        word = 0
        for slot in range(1 << pack):
            density = rng.choice([0.0, 0.2, 0.6, 1.0])
            word |= sum(1 << c for c in range(sub) if rng.random() < density) << slot * sub
        words.append(word)
    return words


@pytest.mark.parametrize("lanes", [8, 16])
@pytest.mark.parametrize("pack", [0, 1, 2])
def test_sim_packed_scan_matches_reference_and_cost(lanes, pack):
    rng = np.random.default_rng(lanes * 10 + pack)
    width, height, first_word = 3, 4, 5
    positions = width * height  # a multiple of 4
    words = random_packed_words(rng, lanes, first_word + (positions >> pack) + 2, pack)
    events, cycles = run_scan(lanes, words, first_word=first_word, positions=positions,
                              groups=1, width=width, max_pack=2, pack=pack)
    assert events == expected_packed_events(words, first_word, positions, width, lanes, pack)
    # The documented cost, with positions in place of words: no bubble between sub-words.
    sub_words = packed_sub_words(words, first_word, positions, lanes, pack)
    assert cycles == 2 + sum(max(1, bin(bits).count("1")) for bits in sub_words)
    # The same spikes stored unpacked (one word per position) scan to the same events.
    unpacked, _ = run_scan(lanes, sub_words, first_word=0, positions=positions, groups=1,
                           width=width)
    assert events == unpacked


def test_sim_packed_scan_with_one_bit_pack_field():
    rng = np.random.default_rng(5)
    lanes, width, positions = 8, 2, 8
    words = random_packed_words(rng, lanes, positions // 2, 1)
    events, cycles = run_scan(lanes, words, first_word=0, positions=positions, groups=1,
                              width=width, max_pack=1, pack=1)
    assert events == expected_packed_events(words, 0, positions, width, lanes, 1)
    sub_words = packed_sub_words(words, 0, positions, lanes, 1)
    assert cycles == 2 + sum(max(1, bin(bits).count("1")) for bits in sub_words)


def test_sim_packing_scanner_keeps_the_grouped_scan():
    # pack = 0 on a scanner built for packing: several groups per position, as without it.
    rng = np.random.default_rng(9)
    lanes, groups, width, positions = 8, 3, 3, 6
    words = random_words(rng, lanes, positions * groups, 0.4)
    events, cycles = run_scan(lanes, words, first_word=0, positions=positions, groups=groups,
                              width=width, max_pack=2, pack=0)
    assert events == expected_events(words, 0, positions, groups, width, lanes)
    assert cycles == expected_cycles(words, 0, positions * groups)


@pytest.mark.parametrize("pause", [(1, 0), (0, 0, 1, 1, 1)])
def test_sim_packed_back_pressure_keeps_every_event(pause):
    rng = np.random.default_rng(13)
    lanes, width, positions = 16, 4, 16
    words = random_packed_words(rng, lanes, positions // 4, 2)
    events, _ = run_scan(lanes, words, first_word=0, positions=positions, groups=1,
                         width=width, max_pack=2, pack=2, pause=pause)
    assert events == expected_packed_events(words, 0, positions, width, lanes, 2)


def test_pack_field_only_when_built():
    assert "pack" not in EventScanner(lanes=8, word_addr_bits=8, channel_bits=8, coord_bits=6,
                                      position_bits=8, group_bits=2).signature.members[
                                          "params"].shape.members
    for max_pack, pack_bits in ((1, 1), (2, 2)):
        layout = EventScanner(lanes=8, word_addr_bits=8, channel_bits=8, coord_bits=6,
                              position_bits=8, group_bits=2, max_pack=max_pack
                              ).signature.members["params"].shape
        assert list(layout.members)[-1] == "pack"  # last: a layout without it zero-extends
        assert layout.members["pack"].width == pack_bits


def test_sim_single_word_without_spikes_gives_only_the_end_marker():
    events, cycles = run_scan(4, [0, 0], first_word=1, positions=1, groups=1, width=1)
    assert events == [] and cycles == 3


@pytest.mark.parametrize("name, value, message", [
    ("lanes", 0, r"^Lane count must be a positive integer, not 0$"),
    ("word_addr_bits", "8", r"^Word address width must be a positive integer, not '8'$"),
    ("coord_bits", True, r"^Coordinate width must be a positive integer, not True$"),
])
def test_init_wrong_parameter(name, value, message):
    params = dict(lanes=4, word_addr_bits=8, channel_bits=8, coord_bits=6, position_bits=8,
                  group_bits=2)
    params[name] = value
    with pytest.raises(TypeError, match=message):
        EventScanner(**params)


@pytest.mark.parametrize("value, message", [
    (3, r"^Maximum pack must be an integer in 0\.\.2, not 3$"),
    (-1, r"^Maximum pack must be an integer in 0\.\.2, not -1$"),
    ("1", r"^Maximum pack must be an integer in 0\.\.2, not '1'$"),
])
def test_init_wrong_max_pack(value, message):
    with pytest.raises(TypeError, match=message):
        EventScanner(lanes=8, word_addr_bits=8, channel_bits=8, coord_bits=6, position_bits=8,
                     group_bits=2, max_pack=value)


def test_init_lanes_not_divisible_by_the_pack():
    with pytest.raises(ValueError,
                       match=r"^Lane count 6 cannot hold 4 positions per word "
                             r"\(maximum pack 2\)$"):
        EventScanner(lanes=6, word_addr_bits=8, channel_bits=8, coord_bits=6, position_bits=8,
                     group_bits=2, max_pack=2)


def test_layout_wrong_pack_bits():
    with pytest.raises(TypeError, match=r"^Pack width must be an integer in 0\.\.2, not 3$"):
        scan_params_layout(word_addr_bits=8, position_bits=8, group_bits=2, coord_bits=6,
                           pack_bits=3)


def test_init_wrong_channel_width():
    with pytest.raises(ValueError, match=r"^Channel width 3 cannot number 16 lanes$"):
        EventScanner(lanes=16, word_addr_bits=8, channel_bits=3, coord_bits=6, position_bits=8,
                     group_bits=2)
