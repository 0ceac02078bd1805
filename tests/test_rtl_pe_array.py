# amaranth: UnusedElaboratable=no
"""PEArray: accumulation vs NumPy and the golden synapse, hazards, and the pipeline latency;
position packing (``max_pack > 0``) vs ``apply_items``, a reference written from the packed
contract position by position, on a bank of four independently addressed quarters."""

import itertools
import random
import re

import numpy as np
import pytest

from amaranth.hdl import Module, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl_models import PEHarness, read_rows, run_sim, vcd_file
from spikeforge.golden.network import Layer, conv_output_size
from spikeforge.golden.synapse import weighted_current
from spikeforge.rtl.interfaces import (RowPortSignature, event_layout, row_layout,
                                      tap_layout)
from spikeforge.rtl.pe_array import LATENCY, QUARTERS, PEArray
from spikeforge.rtl.tap_generator import TapGenerator, geometry_layout
from spikeforge.sim.streams import stream_put_all

PARAMS = {"lanes": 4, "weight_bits": 4, "psum_bits": 16, "addr_bits": 6, "weight_addr_bits": 7}
END = {"out_addr": 0, "weight_addr": 0, "end": 1}


def random_weights(rng, rows, lanes, weight_bits=4):
    low, high = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    return rng.integers(low, high, size=(rows, lanes), endpoint=True)


def accumulate(taps, weights, depth):
    """The reference: every tap adds its weight row to its bank row."""
    bank = np.zeros((depth, weights.shape[1]), dtype=np.int64)
    for addr, row in taps:
        bank[addr] += weights[row]
    return bank


async def wait_done(ctx, dut, limit=1000):
    """Cycles until ``done`` is sampled high (bounded, so that a hang fails the test)."""
    for cycle in range(limit):
        if (await ctx.tick().sample(dut.done))[2]:
            return cycle
    raise AssertionError(f"done not raised within {limit} cycles")


def run(dut, payloads, *, put_pause=(0,), name="pe_array", tmp_path=None, geometry=None):
    """Send the payloads (then ``end``), wait for ``done``, and return the bank's rows."""
    result = {}

    async def testbench(ctx):
        if geometry is not None:
            ctx.set(dut.geometry, geometry)
            await ctx.tick()
        await stream_put_all(ctx, dut.i_stream, payloads, pause=put_pause)
        await wait_done(ctx, dut)
        result["bank"] = np.array(read_rows(ctx, dut.bank, dut.pe.lanes), dtype=np.int64)

    run_sim(dut, testbench, vcd=vcd_file(tmp_path, name))
    return result["bank"]


def tap_payloads(taps):
    return [{"out_addr": a, "weight_addr": w, "end": 0} for a, w in taps] + [END]


def test_init():
    dut = PEArray(**PARAMS)
    assert (dut.lanes, dut.weight_bits, dut.psum_bits, dut.addr_bits, dut.weight_addr_bits,
            dut.taps_per_cycle) == (4, 4, 16, 6, 7, 1)
    assert set(dut.signature.members.keys()) == {"i_stream", "bank", "weights", "busy", "done"}


@pytest.mark.parametrize("param, message", [
    ("lanes", "Lane count"), ("weight_bits", "Weight width"),
    ("psum_bits", "Partial-sum width"), ("addr_bits", "Address width"),
    ("weight_addr_bits", "Weight address width"), ("taps_per_cycle", "Taps per cycle")])
@pytest.mark.parametrize("value", [0, 1.5, None])
def test_init_wrong_param(param, message, value):
    with pytest.raises(TypeError, match=rf"^{message} must be a positive integer, not {value!r}$"):
        PEArray(**{**PARAMS, param: value})


def test_init_wrong_psum_bits():
    with pytest.raises(ValueError, match=r"^Partial-sum width must be at least the weight width "
                                         r"\(4\), not 3$"):
        PEArray(**{**PARAMS, "psum_bits": 3})


def test_init_wrong_taps_per_cycle():
    with pytest.raises(ValueError, match=r"^Taps per cycle must be 1 \(the multi-tap variant with "
                                         r"interleaved sub-banks is planned\), not 2$"):
        PEArray(**PARAMS, taps_per_cycle=2)


@pytest.mark.parametrize("lanes", [4, 16, 64])
@pytest.mark.parametrize("put_pause", [(0,), (0, 1, 0, 0, 1, 1)])
def test_sim_random_taps(lanes, put_pause, tmp_path):
    rng = np.random.default_rng(lanes + len(put_pause))
    weights = random_weights(rng, 100, lanes)
    # Few hot addresses, so that back-to-back and A-B-A hazards are frequent.
    addrs = rng.choice([3, 7, 8, 40, *range(64)], size=150)
    taps = list(zip(addrs.tolist(), rng.integers(0, 100, size=150).tolist()))
    dut = PEHarness(weights=weights.tolist(), depth=64, **{**PARAMS, "lanes": lanes})
    bank = run(dut, tap_payloads(taps), put_pause=put_pause, name=f"random_{lanes}",
               tmp_path=tmp_path)
    np.testing.assert_array_equal(bank, accumulate(taps, weights, 64))


def accept_cycles(count, pause):
    """Transfer cycles of ``count`` taps sent with ``pause`` into an always-ready sink."""
    pauses, cycle, cycles = itertools.cycle(pause), 0, []
    for _ in range(count):
        while next(pauses):
            cycle += 1
        cycles.append(cycle)
        cycle += 1
    return cycles


def hazard_distances(addrs, cycles):
    """Cycle distances (1 or 2) between a tap and an earlier in-flight tap at its address."""
    return {c2 - c1 for (a1, c1), (a2, c2) in itertools.combinations(zip(addrs, cycles), 2)
            if a1 == a2 and c2 - c1 <= 2}


HAZARDS = {  # pattern -> hazard distances it provokes without bubbles
    "AAAAAA": {1, 2}, "ABABAB": {2}, "ABA": {2}, "AAB": {1}, "ABCABC": set(),
    "AABBAB": {1, 2}, "ABBA": {1}}


@pytest.mark.parametrize("pattern", sorted(HAZARDS))
@pytest.mark.parametrize("put_pause", [(0,), (1, 0), (0, 1, 1), (0, 0, 1)])
@pytest.mark.parametrize("transparent", [False, True])
def test_sim_hazards(pattern, put_pause, transparent):
    """Every hazard distance, with bubbles of 1 and 2 cycles, on both bank read flavours."""
    rng = np.random.default_rng(7)
    weights = random_weights(rng, 8, 4)
    addrs = [{"A": 5, "B": 9, "C": 5 + 16}[c] for c in pattern] * 2
    taps = [(a, k % 8) for k, a in enumerate(addrs)]
    cycles = accept_cycles(len(taps), put_pause)
    if put_pause == (0,):
        assert hazard_distances(addrs[:len(pattern)], cycles) == HAZARDS[pattern]
    dut = PEHarness(weights=weights.tolist(), depth=64, transparent=transparent, **PARAMS)
    bank = run(dut, tap_payloads(taps), put_pause=put_pause)
    np.testing.assert_array_equal(bank, accumulate(taps, weights, 64))


def test_hazard_patterns_cover_every_distance():
    """Across the pause patterns above, distances 1 and 2 both occur after bubbles too."""
    seen = set()
    for pattern in HAZARDS:
        addrs = list(pattern) * 2
        for pause in [(1, 0), (0, 1, 1), (0, 0, 1)]:
            seen |= hazard_distances(addrs, accept_cycles(len(addrs), pause))
    assert seen == {1, 2}


@pytest.mark.parametrize("count", [0, 1, 2, 5, 40])
def test_sim_cycle_count(count):
    """``n`` taps then ``end`` back to back: ``done`` is first high in cycle ``n + LATENCY``."""
    rng = np.random.default_rng(count)
    weights = random_weights(rng, 16, 4)
    taps = [(int(a), int(w)) for a, w in zip(rng.integers(0, 3, count),
                                             rng.integers(0, 16, count))]
    dut = PEHarness(weights=weights.tolist(), depth=64, **PARAMS)
    result = {}

    async def testbench(ctx):
        busy = 0
        for cycle, payload in enumerate(tap_payloads(taps)):
            ctx.set(dut.i_stream.valid, 1)
            ctx.set(dut.i_stream.payload, payload)
            _, _, ready, done, b = await ctx.tick().sample(dut.i_stream.ready, dut.done, dut.busy)
            assert ready and not done
            busy += b
        ctx.set(dut.i_stream.valid, 0)
        for cycle in range(count + 1, count + 20):
            _, _, done, b = await ctx.tick().sample(dut.done, dut.busy)
            if done:
                result["done"] = cycle
                break
            busy += b
        result["busy"] = busy
        result["bank"] = np.array(read_rows(ctx, dut.bank, 4), dtype=np.int64)

    run_sim(dut, testbench)
    assert result["done"] == count + LATENCY
    assert result["busy"] == count + LATENCY  # taps, the marker, and two drain cycles
    np.testing.assert_array_equal(result["bank"], accumulate(taps, weights, 64))


def conv_case(rng, lanes):
    channels, out_channels = 3, lanes - 1
    kernel, stride, padding, in_h, in_w = (3, 2), (2, 1), (1, 1), 7, 6
    out_h = conv_output_size(in_h, kernel[0], stride[0], padding[0])
    out_w = conv_output_size(in_w, kernel[1], stride[1], padding[1])
    weight = random_weights(rng, out_channels * channels * 6, 1).reshape(
        out_channels, channels, *kernel).astype(np.int8)
    layer = Layer(name="conv", type="conv2d", inputs=("x",), output="y",
                  in_shape=(channels, in_h, in_w), out_shape=(out_channels, out_h, out_w),
                  weight=weight, weight_bits=4, kernel=kernel, stride=stride, padding=padding)
    base = 5
    rows = np.zeros((base + channels * 6, lanes), dtype=np.int64)
    rows[base:, :out_channels] = weight.reshape(out_channels, -1).T  # (c, ky, kx) row order
    geometry = {"kernel_h": kernel[0], "kernel_w": kernel[1], "stride_h": stride[0],
                "stride_w": stride[1], "pad_h": padding[0], "pad_w": padding[1],
                "out_h": out_h, "out_w": out_w, "in_h": in_h, "in_w": in_w,
                "weight_base": base, "linear": 0}
    return layer, rows, geometry


def linear_case(rng, lanes):
    shape, out_features = (2, 3, 4), lanes - 2
    weight = random_weights(rng, out_features * 24, 1).reshape(out_features, 24).astype(np.int8)
    layer = Layer(name="fc", type="linear", inputs=("x",), output="y", in_shape=(24,),
                  out_shape=(out_features,), weight=weight, weight_bits=4)
    base = 3
    rows = np.zeros((base + 24, lanes), dtype=np.int64)
    rows[base:, :out_features] = weight.T
    geometry = {"kernel_h": 0, "kernel_w": 0, "stride_h": 1, "stride_w": 1, "pad_h": 0,
                "pad_w": 0, "out_h": 0, "out_w": 0, "in_h": shape[1], "in_w": shape[2],
                "weight_base": base, "linear": 1}
    return layer, rows, geometry, shape


@pytest.mark.parametrize("lanes, put_pause", [(4, (0,)), (16, (0, 1, 1))])
def test_sim_conv_end_to_end(lanes, put_pause, tmp_path):
    """TapGenerator -> PEArray on random spikes equals golden weighted_current (no bias)."""
    rng = np.random.default_rng(lanes)
    layer, rows, geometry = conv_case(rng, lanes)
    spikes = (rng.random(layer.in_shape) < 0.3).astype(np.uint8)
    events = [{"channel": int(c), "y": int(y), "x": int(x), "end": 0}
              for c, y, x in zip(*np.nonzero(spikes))]
    dut = PEHarness(weights=rows.tolist(), depth=64, channel_bits=2, coord_bits=3,
                    **{**PARAMS, "lanes": lanes})
    bank = run(dut, events + [{"channel": 0, "y": 0, "x": 0, "end": 1}], put_pause=put_pause,
               geometry=geometry, name=f"conv_{lanes}", tmp_path=tmp_path)
    expected = weighted_current(spikes[None], layer, 1)[0]  # (Co, Ho, Wo)
    positions = expected.shape[1] * expected.shape[2]
    np.testing.assert_array_equal(bank[:positions, :expected.shape[0]],
                                  expected.reshape(expected.shape[0], -1).T)
    assert not bank[:, expected.shape[0]:].any() and not bank[positions:].any()


@pytest.mark.parametrize("lanes, put_pause", [(4, (0,)), (16, (1, 0, 0))])
def test_sim_linear_end_to_end(lanes, put_pause):
    """One tap per event at out_addr 0: the distance-1 hazard on every back-to-back event."""
    rng = np.random.default_rng(10 + lanes)
    layer, rows, geometry, shape = linear_case(rng, lanes)
    spikes = (rng.random(shape) < 0.5).astype(np.uint8)
    events = [{"channel": int(c), "y": int(y), "x": int(x), "end": 0}
              for c, y, x in zip(*np.nonzero(spikes))]
    dut = PEHarness(weights=rows.tolist(), depth=64, channel_bits=2, coord_bits=3,
                    **{**PARAMS, "lanes": lanes})
    bank = run(dut, events + [{"channel": 0, "y": 0, "x": 0, "end": 1}], put_pause=put_pause,
               geometry=geometry)
    expected = weighted_current(spikes.reshape(1, -1), layer, 1)[0]
    np.testing.assert_array_equal(bank[0, :len(expected)], expected)
    assert not bank[0, len(expected):].any() and not bank[1:].any()


def test_sim_random_seeded_streams():
    """A second, Python-random stream of taps with wide weights (8 bits) and narrow sums."""
    seeded = random.Random(3)
    params = {**PARAMS, "weight_bits": 8, "psum_bits": 12}
    weights = np.array([[seeded.randint(-128, 127) for _ in range(4)] for _ in range(32)])
    taps = [(seeded.randrange(4), seeded.randrange(32)) for _ in range(12)]
    dut = PEHarness(weights=weights.tolist(), depth=64, **params)
    bank = run(dut, tap_payloads(taps), put_pause=(0, 0, 1))
    np.testing.assert_array_equal(bank, accumulate(taps, weights, 64))


# ------------------------------------------------------------------ weight packing

def packed_memory(rows, weight_bits):
    """Memory rows holding logical rows ``2i`` (low half of each lane) and ``2i + 1`` (high
    half), as signed ``weight_bits`` lane values."""
    half = weight_bits // 2
    mask = (1 << half) - 1
    memory = []
    for i in range(0, len(rows), 2):
        low = rows[i]
        high = rows[i + 1] if i + 1 < len(rows) else np.zeros_like(low)
        word = ((high & mask) << half) | (low & mask)
        memory.append(np.where(word >= 1 << (weight_bits - 1), word - (1 << weight_bits), word))
    return np.array(memory, dtype=np.int64)


def test_init_packing():
    dut = PEArray(**{**PARAMS, "weight_bits": 8}, weight_packing=True)
    assert dut.weight_packing is True
    assert "packed" in dut.signature.members
    assert dut.signature.members["i_stream"].signature.members["payload"].shape.size == (
        6 + 8 + 1)  # out_addr, weight_addr with its half-row bit, end
    assert "packed" not in PEArray(**PARAMS).signature.members


@pytest.mark.parametrize("value", [1, None])
def test_init_wrong_weight_packing_type(value):
    with pytest.raises(TypeError, match=rf"^Weight packing must be a bool, not {value!r}$"):
        PEArray(**PARAMS, weight_packing=value)


@pytest.mark.parametrize("bits", [3, 2, 5])
def test_init_wrong_weight_packing_width(bits):
    with pytest.raises(ValueError, match=rf"^Weight packing needs an even weight width of at "
                                         rf"least 4, not {bits}$"):
        PEArray(**{**PARAMS, "weight_bits": bits, "psum_bits": 16}, weight_packing=True)


@pytest.mark.parametrize("weight_bits", [4, 8])
@pytest.mark.parametrize("put_pause", [(0,), (0, 1, 1)])
def test_sim_packed_taps(weight_bits, put_pause):
    # Half-width weights two per row: every tap (even and odd half rows, back to back on
    # hot addresses) adds the logical row it names; the unpacked pass after it reads full rows.
    rng = np.random.default_rng(weight_bits + len(put_pause))
    lanes, logical = 16, 37
    rows = random_weights(rng, logical, lanes, weight_bits // 2)
    full = random_weights(rng, 5, lanes, weight_bits)
    memory = np.concatenate([packed_memory(rows, weight_bits), full])
    base = len(memory) - len(full)
    params = {**PARAMS, "lanes": lanes, "weight_bits": weight_bits, "weight_addr_bits": 6}
    dut = PEHarness(weights=memory.tolist(), depth=64, weight_packing=True, **params)
    packed_taps = list(zip(rng.choice([1, 2, 9, *range(64)], size=120).tolist(),
                           rng.integers(0, logical, size=120).tolist()))
    full_taps = list(zip(rng.choice([1, 2, 9], size=30).tolist(),
                         rng.integers(0, len(full), size=30).tolist()))
    result = {}

    async def testbench(ctx):
        ctx.set(dut.packed, 1)
        await stream_put_all(ctx, dut.i_stream, tap_payloads(packed_taps), pause=put_pause)
        await wait_done(ctx, dut)
        ctx.set(dut.packed, 0)
        await stream_put_all(ctx, dut.i_stream,
                             tap_payloads([(a, base + w) for a, w in full_taps]),
                             pause=put_pause)
        await wait_done(ctx, dut)
        result["bank"] = np.array(read_rows(ctx, dut.bank, lanes), dtype=np.int64)

    run_sim(dut, testbench)
    expected = accumulate(packed_taps, rows, 64) + accumulate(full_taps, full, 64)
    np.testing.assert_array_equal(result["bank"], expected)


# ------------------------------------------------------------------ position packing

PACK_PARAMS = {**PARAMS, "lanes": 16}


def packed_end(max_pack):
    return {**END, "count": 0, "rotate": 0} if max_pack else END


class PackedHarness(wiring.Component):
    """A position-packed ``PEArray`` on a bank of four quarter memories and a weight memory.

    Quarter ``u`` (lanes ``u * lanes / 4 ..``) is a memory of its own, driven by the bank
    port's ``r_addr[u]``/``r_en[u]``/``w_addr[u]``/``w_en[u]``, with the same
    non-transparent read as ``PEHarness``'s bank (``transparent`` makes it write-first), so
    that a quarter reads and writes only when its own enables say so. ``init`` preloads the
    bank (rows of ``lanes`` values). Given ``channel_bits``/``coord_bits``, a packed
    ``TapGenerator`` feeds the array (``i_stream`` carries events, ``geometry`` its ``pack``
    drives the array's ``pack``).
    """

    def __init__(self, *, weights, depth, init=(), transparent=False, channel_bits=None,
                 coord_bits=None, **pe_params):
        self.pe = pe = PEArray(**pe_params)
        self._transparent = transparent
        quarter = pe.lanes // QUARTERS
        self.quarters = [memory.MemoryData(
            shape=row_layout(pe.psum_bits, quarter), depth=depth,
            init=[list(row[u * quarter:(u + 1) * quarter]) for row in init])
            for u in range(QUARTERS)]
        self.weight_rows = memory.MemoryData(shape=row_layout(pe.weight_bits, pe.lanes),
                                             depth=len(weights), init=weights)
        members = {"done": Out(1), "busy": Out(1)}
        if pe.weight_packing:
            members["packed"] = In(1)
        if coord_bits is None:
            self.tap_generator = None
            members["pack"] = In(2)
            members["i_stream"] = In(stream.Signature(tap_layout(
                addr_bits=pe.addr_bits, weight_addr_bits=pe.weight_addr_bits + pe.weight_packing,
                max_pack=pe.max_pack)))
        else:
            self.tap_generator = TapGenerator(
                channel_bits=channel_bits, coord_bits=coord_bits, addr_bits=pe.addr_bits,
                weight_addr_bits=pe.weight_addr_bits, max_pack=pe.max_pack)
            members["geometry"] = In(geometry_layout(coord_bits=coord_bits,
                                                     weight_addr_bits=pe.weight_addr_bits))
            members["i_stream"] = In(stream.Signature(event_layout(
                channel_bits=channel_bits, coord_bits=coord_bits)))
        super().__init__(members)

    def bank_rows(self, ctx):
        """The bank as a ``(depth, lanes)`` array, the quarters side by side."""
        quarter = self.pe.lanes // QUARTERS
        return np.concatenate([np.array(read_rows(ctx, contents, quarter), dtype=np.int64)
                               for contents in self.quarters], axis=1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.pe = pe = self.pe
        if pe.weight_packing:
            m.d.comb += pe.packed.eq(self.packed)
        if self.tap_generator is None:
            m.d.comb += pe.pack.eq(self.pack)
            wiring.connect(m, source=wiring.flipped(self.i_stream), sink=pe.i_stream)
        else:
            m.submodules.tap_generator = tg = self.tap_generator
            m.d.comb += [tg.geometry.eq(self.geometry), pe.pack.eq(self.geometry.pack)]
            wiring.connect(m, source=wiring.flipped(self.i_stream), sink=tg.i_stream)
            wiring.connect(m, taps=tg.o_stream, pe=pe.i_stream)
        m.d.comb += [self.done.eq(pe.done), self.busy.eq(pe.busy)]
        quarter = pe.lanes // QUARTERS
        for u, contents in enumerate(self.quarters):
            m.submodules[f"quarter{u}"] = mem = memory.Memory(data=contents)
            write = mem.write_port()
            read = mem.read_port(transparent_for=(write,) if self._transparent else ())
            m.d.comb += [
                read.addr.eq(pe.bank.r_addr[u]), read.en.eq(pe.bank.r_en[u]),
                write.addr.eq(pe.bank.w_addr[u]), write.en.eq(pe.bank.w_en[u]),
                *(pe.bank.r_data[u * quarter + i].eq(read.data[i]) for i in range(quarter)),
                *(write.data[i].eq(pe.bank.w_data[u * quarter + i]) for i in range(quarter)),
            ]
        m.submodules.weight_memory = weight_memory = memory.Memory(data=self.weight_rows)
        weight_read = weight_memory.read_port()
        m.d.comb += [
            weight_read.addr.eq(pe.weights.addr), weight_read.en.eq(pe.weights.en),
            pe.weights.data.eq(weight_read.data),
        ]
        return m


def apply_items(bank, items, pack, lanes):
    """The reference of the packed contract, position by position: item ``(low, count,
    rotate, weight)`` adds to each position ``p = low + i``, ``i < count``, which lives in
    row ``p // P``, slot ``p mod P`` (lanes ``slot * C ..``, ``C = lanes / P``), weight
    slot ``(p mod P - rotate) mod P`` of the row ``weight`` (``lanes`` values). ``pack = 0``
    ignores ``count`` and ``rotate``. Updates ``bank`` (rows x lanes) in place."""
    size = 1 << pack
    width = lanes // size
    for low, count, rotate, weight in items:
        for position in range(low, low + (count if pack else 1)):
            row, slot = divmod(position, size)
            source = (slot - rotate) % size
            bank[row, slot * width:(slot + 1) * width] += weight[source * width:
                                                                 (source + 1) * width]
    return bank


def touched(item, pack, lanes):
    """The ``(row, quarter)`` pairs an item ``(low, count, ...)`` updates (quarters of
    ``lanes / 4`` lanes), from the positions it lands on."""
    size, low, count = 1 << pack, item[0], item[1] if pack else 1
    per_slot = QUARTERS // size
    return {(p // size, (p % size) * per_slot + k) for p in range(low, low + count)
            for k in range(per_slot)}


def random_items(rng, count, pack, weight_rows):
    """``(low, count, rotate, weight_addr)`` items: four that make every kind of per-quarter
    hazard back to back (see ``quarter_hazards``), then random ones with every count and
    rotate and lows mostly on a few rows, so that the same row of a quarter is hit at
    distances 1 and 2, often by items whose first rows differ (one spans into the row the
    other starts in)."""
    size = 1 << pack
    hot = [size - 1, size, 2 * size - 1, 2 * size, 2 * size + 1]
    lows = rng.choice([*hot * 20, *range(60)], size=count).tolist()
    directed = [(size - 1, 2, 0), (size, 1, 1), (size - 1, size, 1), (size - 1, 2, 0)]
    return [(low, n, r, int(rng.integers(0, weight_rows))) for low, n, r in directed] + list(
        zip(lows, rng.integers(1, size, size=count, endpoint=True).tolist(),
            rng.integers(0, size, size=count).tolist(),
            rng.integers(0, weight_rows, size=count).tolist()))


def item_payloads(items, max_pack):
    return [{"out_addr": low, "weight_addr": w, "end": 0, "count": n, "rotate": r}
            for low, n, r, w in items] + [packed_end(max_pack)]


def quarter_hazards(items, cycles, pack, lanes):
    """``(distance, same_first_row)`` for every pair of items at most 2 cycles apart that
    update the same row of a quarter; ``same_first_row`` is whether their ``low >> pack``
    agree (if not, only per-quarter addresses see the hazard)."""
    return {(c2 - c1, i1[0] >> pack == i2[0] >> pack)
            for (i1, c1), (i2, c2) in itertools.combinations(zip(items, cycles), 2)
            if c2 - c1 <= 2 and touched(i1, pack, lanes) & touched(i2, pack, lanes)}


def run_packed(dut, payloads, *, pack, put_pause=(0,), packed=None, monitor=None):
    """Send the payloads at ``pack`` (and ``packed``), wait for ``done``, return the bank;
    ``monitor``, a list, collects ``(cycle, "r" or "w", quarter, row)`` for every enabled
    read and write of the bank's quarters."""
    result = {}
    pe = dut.pe

    async def testbench(ctx):
        ctx.set(dut.pack, pack)
        if packed is not None:
            ctx.set(dut.packed, packed)
        await stream_put_all(ctx, dut.i_stream, payloads, pause=put_pause)
        await wait_done(ctx, dut)
        result["bank"] = dut.bank_rows(ctx)

    async def watch(ctx):
        cycle = 0
        async for _, _, r_en, r_addr, w_en, w_addr in ctx.tick().sample(
                pe.bank.r_en, pe.bank.r_addr, pe.bank.w_en, pe.bank.w_addr):
            for u in range(QUARTERS):
                if r_en >> u & 1:
                    monitor.append((cycle, "r", u, int(r_addr[u])))
                if w_en >> u & 1:
                    monitor.append((cycle, "w", u, int(w_addr[u])))
            cycle += 1

    run_sim(dut, testbench, background=() if monitor is None else (watch,))
    return result["bank"]


def test_init_position_packing():
    dut = PEArray(**PACK_PARAMS, max_pack=2)
    assert dut.max_pack == 2 and PEArray(**PACK_PARAMS).max_pack == 0
    members = dut.signature.members
    assert set(members.keys()) == {"i_stream", "pack", "bank", "weights", "busy", "done"}
    assert members["pack"] == In(2)
    payload = members["i_stream"].signature.members["payload"].shape
    assert {"count", "rotate"} <= set(payload.members)
    assert (payload["count"].shape.width, payload["rotate"].shape.width) == (3, 2)
    bank = members["bank"].signature.members
    assert bank["r_addr"].shape == data.ArrayLayout(unsigned(6), 4) == bank["w_addr"].shape
    assert bank["r_en"] == bank["w_en"] == Out(4)
    # Two positions at most: still four quarters, narrower count and rotate.
    payload = PEArray(**PACK_PARAMS, max_pack=1).signature.members["i_stream"].signature
    assert (payload.members["payload"].shape["count"].shape.width,
            payload.members["payload"].shape["rotate"].shape.width) == (2, 1)
    assert PEArray(**PACK_PARAMS, max_pack=1).signature.members["bank"].signature.members == (
        RowPortSignature(addr_bits=6, bits=16, lanes=16, slots=4).members)


@pytest.mark.parametrize("value", [3, -1, "1", None])
def test_init_wrong_max_pack(value):
    with pytest.raises(TypeError, match=rf"^Maximum pack must be an integer in 0\.\.2, not "
                                        rf"{re.escape(repr(value))}$"):
        PEArray(**PACK_PARAMS, max_pack=value)


@pytest.mark.parametrize("lanes", [6, 2, 17])
def test_init_position_packing_wrong_lanes(lanes):
    with pytest.raises(ValueError, match=rf"^Position packing needs a lane count that is a "
                                         rf"multiple of 4, not {lanes}$"):
        PEArray(**{**PACK_PARAMS, "lanes": lanes}, max_pack=1)
    assert PEArray(**{**PACK_PARAMS, "lanes": lanes}).lanes == lanes  # unpacked: any count


def test_reference_apply_items_by_hand():
    """The reference on two hand-checked items, 8 lanes: ``P = 4`` is 2 lanes a position."""
    weight = np.arange(1, 9)
    bank = apply_items(np.zeros((3, 8), dtype=np.int64), [(3, 3, 1, weight)], 2, 8)
    # Positions 3 (row 0 slot 3), 4, 5 (row 1 slots 0, 1); slot s takes weight slot s - 1.
    np.testing.assert_array_equal(bank, [[0, 0, 0, 0, 0, 0, 5, 6],
                                         [7, 8, 1, 2, 0, 0, 0, 0],
                                         [0] * 8])
    bank = apply_items(np.zeros((2, 8), dtype=np.int64), [(1, 1, 1, weight)], 1, 8)
    np.testing.assert_array_equal(bank, [[0, 0, 0, 0, 1, 2, 3, 4], [0] * 8])
    assert touched((3, 3), 2, 8) == {(0, 3), (1, 0), (1, 1)}
    assert touched((1, 1), 1, 8) == {(0, 2), (0, 3)}


#: ``(max_pack, pack, put_pause, weight_packing, transparent)`` of the random packed streams.
PACKED_CASES = [
    (1, 1, (0,), False, False), (1, 1, (0, 1, 0, 0, 1, 1), True, False),
    (2, 1, (0,), True, False), (2, 1, (0, 0, 1), False, True),
    (2, 2, (0,), False, False), (2, 2, (0, 1, 0, 0, 1, 1), False, False),
    (2, 2, (0,), True, True), (2, 2, (1, 0), True, False)]


def case_items(case, weight_rows=40):
    """The item stream of one of ``PACKED_CASES``."""
    seed = PACKED_CASES.index(case)
    return random_items(np.random.default_rng(seed), 120, case[1], weight_rows)


@pytest.mark.parametrize("case", PACKED_CASES)
def test_sim_position_packed_random(case):
    """Random items (rows spanned, every count and rotate, hot rows at distances 1 and 2,
    bubbles) equal the reference; with weight packing the items name half rows."""
    max_pack, pack, put_pause, weight_packing, transparent = case
    rng = np.random.default_rng(100 + PACKED_CASES.index(case))
    lanes, weight_bits, logical = 16, 8 if weight_packing else 4, 40
    rows = random_weights(rng, logical, lanes, weight_bits // 2 if weight_packing else 4)
    memory_rows = packed_memory(rows, weight_bits) if weight_packing else rows
    items = case_items(case, logical)
    dut = PackedHarness(weights=memory_rows.tolist(), depth=64, transparent=transparent,
                        max_pack=max_pack, weight_packing=weight_packing,
                        **{**PACK_PARAMS, "weight_bits": weight_bits})
    bank = run_packed(dut, item_payloads(items, max_pack), pack=pack, put_pause=put_pause,
                      packed=1 if weight_packing else None)
    expected = apply_items(np.zeros((64, lanes), dtype=np.int64),
                           [(low, n, r, rows[w]) for low, n, r, w in items], pack, lanes)
    np.testing.assert_array_equal(bank, expected)


@pytest.mark.parametrize("lanes, pack", [(4, 2), (4, 1), (8, 2)])
def test_sim_position_packed_narrow(lanes, pack):
    """Quarters of one or two lanes (one lane a position with 4 lanes and ``P = 4``)."""
    rng = np.random.default_rng(lanes + pack)
    rows = random_weights(rng, 40, lanes)
    items = random_items(rng, 60, pack, 40)
    dut = PackedHarness(weights=rows.tolist(), depth=64, max_pack=2,
                        **{**PACK_PARAMS, "lanes": lanes})
    bank = run_packed(dut, item_payloads(items, 2), pack=pack, put_pause=(0, 0, 1))
    np.testing.assert_array_equal(bank, apply_items(
        np.zeros((64, lanes), dtype=np.int64), [(low, n, r, rows[w]) for low, n, r, w in items],
        pack, lanes))


@pytest.mark.parametrize("case", PACKED_CASES)
def test_position_packed_streams_cover_the_cases(case):
    """Each random stream above holds every count and rotate, items spanning two rows, and
    per-quarter hazards at distances 1 and 2 (1 is impossible with the pause ``(1, 0)``),
    both between items of the same first row and between items whose first rows differ."""
    _, pack, put_pause, _, _ = case
    items, size = case_items(case), 1 << pack
    assert {(n, r) for _, n, r, _ in items} == set(itertools.product(range(1, size + 1),
                                                                     range(size)))
    assert any(low % size + n > size for low, n, _, _ in items)  # spans two rows
    distances = {2} if put_pause == (1, 0) else {1, 2}
    assert quarter_hazards(items, accept_cycles(len(items), put_pause), pack, 16) == set(
        itertools.product(distances, (False, True)))


@pytest.mark.parametrize("max_pack", [1, 2])
def test_sim_position_packed_pack_0_is_unpacked(max_pack):
    """``pack = 0``: every quarter at ``out_addr``, unrotated, whatever count and rotate
    say; equals the unpacked reference on the unpacked hazard patterns."""
    rng = np.random.default_rng(40 + max_pack)
    weights = random_weights(rng, 50, 16)
    addrs = rng.choice([3, 7, 8, 40, *range(64)], size=100).tolist()
    taps = list(zip(addrs, rng.integers(0, 50, size=100).tolist()))
    counts = rng.integers(0, 1 << max_pack, size=100, endpoint=True).tolist()
    rotates = rng.integers(0, 1 << max_pack, size=100).tolist()
    items = [(a, n, r, w) for (a, w), n, r in zip(taps, counts, rotates)]
    dut = PackedHarness(weights=weights.tolist(), depth=64, max_pack=max_pack, **PACK_PARAMS)
    bank = run_packed(dut, item_payloads(items, max_pack), pack=0, put_pause=(0, 0, 1))
    np.testing.assert_array_equal(bank, accumulate(taps, weights, 64))


@pytest.mark.parametrize("pack", [1, 2])
def test_sim_position_packed_enables(pack):
    """Each item reads and writes exactly the quarters (at the rows) its positions live in,
    once each, two cycles apart: a disabled quarter is never read or written, and the rows
    around a preloaded bank stay as they were."""
    rng = np.random.default_rng(50 + pack)
    size = 1 << pack
    weights = random_weights(rng, 20, 16)
    init = rng.integers(-100, 100, size=(64, 16))
    # Short items (count < P where P > 1 allows it) on hot rows, back to back.
    items = [(low, int(rng.integers(1, max(2, size - 1), endpoint=True)),
              int(rng.integers(0, size)), int(rng.integers(0, 20)))
             for low in rng.choice([size - 1, size + 1, 2 * size - 1, 9, 30], size=40).tolist()]
    dut = PackedHarness(weights=weights.tolist(), depth=64, init=init.tolist(), max_pack=2,
                        **PACK_PARAMS)
    seen = []
    bank = run_packed(dut, item_payloads(items, 2), pack=pack, monitor=seen)
    expected = apply_items(init.copy(), [(low, n, r, weights[w]) for low, n, r, w in items],
                           pack, 16)
    np.testing.assert_array_equal(bank, expected)
    start = min(cycle for cycle, *_ in seen)
    for k, item in enumerate(items):
        for kind, when in (("r", start + k), ("w", start + k + 2)):
            assert {(u, row) for cycle, what, u, row in seen
                    if what == kind and cycle == when} == {(u, row) for row, u in
                                                           touched(item, pack, 16)}
    assert len(seen) == 2 * sum(len(touched(item, pack, 16)) for item in items)
    untouched = set(itertools.product(range(64), range(QUARTERS))) - set().union(
        *(touched(item, pack, 16) for item in items))
    for row, u in untouched:
        np.testing.assert_array_equal(bank[row, u * 4:(u + 1) * 4], init[row, u * 4:(u + 1) * 4])


@pytest.mark.parametrize("count", [0, 1, 7])
def test_sim_position_packed_cycle_count(count):
    """Packed, ``n`` items then ``end`` back to back: ``done`` first high in cycle ``n +
    LATENCY``, ``busy`` high ``n + LATENCY`` cycles, as unpacked."""
    rng = np.random.default_rng(60 + count)
    weights = random_weights(rng, 8, 16)
    items = random_items(rng, count, 2, 8)[:count]  # the directed hazards first
    dut = PackedHarness(weights=weights.tolist(), depth=64, max_pack=2, **PACK_PARAMS)
    result = {}

    async def testbench(ctx):
        ctx.set(dut.pack, 2)
        busy = 0
        for payload in item_payloads(items, 2):
            ctx.set(dut.i_stream.valid, 1)
            ctx.set(dut.i_stream.payload, payload)
            _, _, ready, done, b = await ctx.tick().sample(dut.i_stream.ready, dut.done, dut.busy)
            assert ready and not done
            busy += b
        ctx.set(dut.i_stream.valid, 0)
        for cycle in range(count + 1, count + 20):
            _, _, done, b = await ctx.tick().sample(dut.done, dut.busy)
            if done:
                result["done"] = cycle
                break
            busy += b
        result["busy"] = busy
        result["bank"] = dut.bank_rows(ctx)

    run_sim(dut, testbench)
    assert result["done"] == result["busy"] == count + LATENCY
    np.testing.assert_array_equal(result["bank"], apply_items(
        np.zeros((64, 16), dtype=np.int64), [(a, n, r, weights[w]) for a, n, r, w in items],
        2, 16))


@pytest.mark.parametrize("pack, put_pause", [(1, (0,)), (2, (0, 1, 1))])
def test_sim_position_packed_conv_end_to_end(pack, put_pause):
    """Packed TapGenerator -> packed PEArray on random spikes equals golden
    weighted_current: weight row ``(c * K_h + ky) * cols + j`` holds kernel column ``j * P +
    P - 1 - i`` in slot ``i``; output position ``p`` is row ``p // P``, slot ``p mod P``."""
    rng = np.random.default_rng(70 + pack)
    lanes, size = 16, 1 << pack
    width = lanes // size  # output channels of one position
    channels, out_channels = 2, min(3, width)
    kernel, stride, padding, in_h, in_w = (2, 3), (2, 1), (1, 1), 5, 7
    out_h = conv_output_size(in_h, kernel[0], stride[0], padding[0])
    out_w = conv_output_size(in_w, kernel[1], stride[1], padding[1])
    weight = random_weights(rng, out_channels * channels * 6, 1).reshape(
        out_channels, channels, *kernel).astype(np.int8)
    layer = Layer(name="conv", type="conv2d", inputs=("x",), output="y",
                  in_shape=(channels, in_h, in_w), out_shape=(out_channels, out_h, out_w),
                  weight=weight, weight_bits=4, kernel=kernel, stride=stride, padding=padding)
    base, cols = 3, -(-kernel[1] // size)
    rows = np.zeros((base + channels * kernel[0] * cols, lanes), dtype=np.int64)
    for c, ky, j, i in itertools.product(range(channels), range(kernel[0]), range(cols),
                                         range(size)):
        kx = j * size + size - 1 - i
        if kx < kernel[1]:
            rows[base + (c * kernel[0] + ky) * cols + j,
                 i * width:i * width + out_channels] = weight[:, c, ky, kx]
    geometry = {"kernel_h": kernel[0], "kernel_w": kernel[1], "stride_h": stride[0],
                "stride_w": stride[1], "pad_h": padding[0], "pad_w": padding[1],
                "out_h": out_h, "out_w": out_w, "in_h": in_h, "in_w": in_w,
                "weight_base": base, "linear": 0, "pack": pack}
    spikes = (rng.random(layer.in_shape) < 0.4).astype(np.uint8)
    events = [{"channel": int(c), "y": int(y), "x": int(x), "end": 0}
              for c, y, x in zip(*np.nonzero(spikes))]
    dut = PackedHarness(weights=rows.tolist(), depth=64, channel_bits=2, coord_bits=3,
                        max_pack=2, **PACK_PARAMS)
    result = {}

    async def testbench(ctx):
        ctx.set(dut.geometry, geometry)
        await ctx.tick()
        await stream_put_all(ctx, dut.i_stream,
                             events + [{"channel": 0, "y": 0, "x": 0, "end": 1}],
                             pause=put_pause)
        await wait_done(ctx, dut)
        result["bank"] = dut.bank_rows(ctx)

    run_sim(dut, testbench)
    expected = weighted_current(spikes[None], layer, 1)[0].reshape(out_channels, -1).T
    positions = np.zeros((64 * size, width), dtype=np.int64)  # position p, channel i
    positions[:len(expected), :out_channels] = expected
    np.testing.assert_array_equal(result["bank"], positions.reshape(64, lanes))
