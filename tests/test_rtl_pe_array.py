# amaranth: UnusedElaboratable=no
"""PEArray: accumulation vs NumPy and the golden synapse, hazards, and the pipeline latency."""

import itertools
import random

import numpy as np
import pytest

from rtl_models import PEHarness, read_rows, run_sim, vcd_file
from spikeforge.golden.network import Layer, conv_output_size
from spikeforge.golden.synapse import weighted_current
from spikeforge.rtl.pe_array import LATENCY, PEArray
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
