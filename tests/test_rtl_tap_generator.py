# amaranth: UnusedElaboratable=no
"""TapGenerator: taps vs a plain-loop reference, back-pressure, and the exact cycle cost."""

import random

import pytest

from rtl_models import lockstep, run_sim, vcd_file
from spikeforge.rtl.tap_generator import LATENCY, MAX_STRIDE, TapGenerator
from spikeforge.sim.streams import stream_get_all, stream_put_all

PARAMS = {"channel_bits": 3, "coord_bits": 4, "addr_bits": 8, "weight_addr_bits": 10}


def out_size(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


def reference_taps(events, geo):
    """Every tap of every event, by trying all ``(ky, kx)`` (``docs/accelerator.md``)."""
    taps = []
    for c, y, x in events:
        if geo["linear"]:
            feature = (c * geo["in_h"] + y) * geo["in_w"] + x
            taps.append((0, geo["weight_base"] + feature))
            continue
        for ky in range(geo["kernel_h"]):
            for kx in range(geo["kernel_w"]):
                ty, tx = y + geo["pad_h"] - ky, x + geo["pad_w"] - kx
                if ty % geo["stride_h"] or tx % geo["stride_w"]:
                    continue
                oy, ox = ty // geo["stride_h"], tx // geo["stride_w"]
                if 0 <= oy < geo["out_h"] and 0 <= ox < geo["out_w"]:
                    row = (c * geo["kernel_h"] + ky) * geo["kernel_w"] + kx
                    taps.append((oy * geo["out_w"] + ox, geo["weight_base"] + row))
    return taps


def conv_geometry(rng, *, max_stride=2):
    """A random conv geometry: kernels 1-5, strides 1-2, padding 0-2, non-square."""
    while True:
        in_h, in_w = rng.randint(1, 12), rng.randint(1, 12)
        kernel_h, kernel_w = rng.randint(1, 5), rng.randint(1, 5)
        stride_h, stride_w = rng.randint(1, max_stride), rng.randint(1, max_stride)
        pad_h, pad_w = rng.randint(0, 2), rng.randint(0, 2)
        out_h = out_size(in_h, kernel_h, stride_h, pad_h)
        out_w = out_size(in_w, kernel_w, stride_w, pad_w)
        if out_h >= 1 and out_w >= 1:
            return {"kernel_h": kernel_h, "kernel_w": kernel_w, "stride_h": stride_h,
                    "stride_w": stride_w, "pad_h": pad_h, "pad_w": pad_w, "out_h": out_h,
                    "out_w": out_w, "in_h": in_h, "in_w": in_w,
                    "weight_base": rng.randint(0, 100), "linear": 0}


def linear_geometry(rng):
    return {"kernel_h": 0, "kernel_w": 0, "stride_h": 1, "stride_w": 1, "pad_h": 0, "pad_w": 0,
            "out_h": 0, "out_w": 0, "in_h": rng.randint(1, 6), "in_w": rng.randint(1, 6),
            "weight_base": rng.randint(0, 100), "linear": 1}


def random_events(rng, geo, count, channels=4):
    return [(rng.randrange(channels), rng.randrange(geo["in_h"]), rng.randrange(geo["in_w"]))
            for _ in range(count)]


def as_payloads(events):
    return ([{"channel": c, "y": y, "x": x, "end": 0} for c, y, x in events]
            + [{"channel": 0, "y": 0, "x": 0, "end": 1}])


def simulate(geo, events, *, put_pause=(0,), get_pause=(0,), name="tap_generator",
             tmp_path=None):
    """Run one timestep through a fresh DUT; return the taps (``end`` last) as tuples."""
    dut = TapGenerator(**PARAMS)
    expected_count = len(reference_taps(events, geo)) + 1
    received = []

    async def producer(ctx):
        ctx.set(dut.geometry, geo)
        await ctx.tick()  # the geometry is registered: one cycle before the first event
        await stream_put_all(ctx, dut.i_stream, as_payloads(events), pause=put_pause)

    async def consumer(ctx):
        taps = await stream_get_all(ctx, dut.o_stream, expected_count, pause=get_pause)
        received.extend((t.out_addr, t.weight_addr, t.end) for t in taps)
        for _ in range(5):  # nothing may follow the end marker
            assert not (await ctx.tick().sample(dut.o_stream.valid))[2]

    run_sim(dut, producer, consumer, vcd=vcd_file(tmp_path, name))
    return received


def test_init():
    dut = TapGenerator(**PARAMS)
    assert (dut.channel_bits, dut.coord_bits, dut.addr_bits, dut.weight_addr_bits) == (3, 4, 8, 10)
    assert set(dut.signature.members.keys()) == {"geometry", "i_stream", "o_stream", "busy"}
    assert MAX_STRIDE == 7


@pytest.mark.parametrize("param, message", [
    ("channel_bits", "Channel width"), ("coord_bits", "Coordinate width"),
    ("addr_bits", "Address width"), ("weight_addr_bits", "Weight address width")])
@pytest.mark.parametrize("value", [0, 2.0, True])
def test_init_wrong_width(param, message, value):
    with pytest.raises(TypeError, match=rf"^{message} must be a positive integer, not {value!r}$"):
        TapGenerator(**{**PARAMS, param: value})


@pytest.mark.parametrize("seed", range(12))
def test_sim_random_conv(seed, tmp_path):
    rng = random.Random(seed)
    geo = conv_geometry(rng)
    events = random_events(rng, geo, 16)
    pauses = [((0,), (0,)), ((0, 1), (1, 0, 0)), ((1, 1, 0), (0,)), ((0,), (0, 1, 1))]
    put_pause, get_pause = pauses[seed % len(pauses)]
    got = simulate(geo, events, put_pause=put_pause, get_pause=get_pause,
                   name=f"conv_{seed}", tmp_path=tmp_path)
    assert got[:-1] == [(a, w, 0) for a, w in reference_taps(events, geo)]
    assert got[-1][2] == 1


@pytest.mark.parametrize("seed", range(3))
def test_sim_random_conv_large_strides(seed):
    """The divider handles every stride up to MAX_STRIDE, not only 1 and 2."""
    rng = random.Random(50 + seed)
    geo = conv_geometry(rng, max_stride=MAX_STRIDE)
    events = random_events(rng, geo, 30)
    got = simulate(geo, events, get_pause=(0, 1))
    assert got[:-1] == [(a, w, 0) for a, w in reference_taps(events, geo)]


def test_sim_conv_corners():
    """Every input position of a padded, strided, non-square layer, incl. taps-free ones."""
    geo = {"kernel_h": 3, "kernel_w": 2, "stride_h": 2, "stride_w": 1, "pad_h": 2, "pad_w": 1,
           "out_h": 4, "out_w": 7, "in_h": 6, "in_w": 6, "weight_base": 7, "linear": 0}
    assert (geo["out_h"], geo["out_w"]) == (out_size(6, 3, 2, 2), out_size(6, 2, 1, 1))
    events = [(c, y, x) for c in (0, 3) for y in range(6) for x in range(6)]
    got = simulate(geo, events, get_pause=(0, 0, 1))
    assert got[:-1] == [(a, w, 0) for a, w in reference_taps(events, geo)]
    assert got[-1][2] == 1


@pytest.mark.parametrize("seed", range(2))
def test_sim_random_linear(seed):
    rng = random.Random(100 + seed)
    geo = linear_geometry(rng)
    events = random_events(rng, geo, 20)
    got = simulate(geo, events, put_pause=(0, 1), get_pause=(1, 0))
    assert got[:-1] == [(a, w, 0) for a, w in reference_taps(events, geo)]
    assert got[-1][2] == 1


def test_sim_empty_timestep():
    assert simulate(conv_geometry(random.Random(5)), [])[-1][2] == 1


def measure(geo, events, put_pause=(0,)):
    """Cycle of the end marker's transfer, counted from the first input transfer."""
    dut = TapGenerator(**PARAMS)
    result = {}

    async def testbench(ctx):
        ctx.set(dut.geometry, geo)
        await ctx.tick()
        in_cycles, received = await lockstep(ctx, dut.i_stream, as_payloads(events),
                                             dut.o_stream, stop=lambda tap: tap.end,
                                             put_pause=put_pause)
        result["cycles"] = received[-1][0] - in_cycles[0]
        result["taps"] = [(t.out_addr, t.weight_addr) for _, t in received[:-1]]
        result["in_cycles"] = [c - in_cycles[0] for c in in_cycles]
        result["out_cycles"] = [c - in_cycles[0] for c, _ in received]

    run_sim(dut, testbench)
    return result


def cycle_cost(geo, events):
    """The documented cost: ``LATENCY + sum(max(1, taps))``."""
    return LATENCY + sum(max(1, len(reference_taps([e], geo))) for e in events)


@pytest.mark.parametrize("seed", range(4))
def test_sim_cycle_count(seed):
    rng = random.Random(200 + seed)
    geo = conv_geometry(rng) if seed < 3 else linear_geometry(rng)
    events = random_events(rng, geo, 15)
    result = measure(geo, events)
    assert result["taps"] == reference_taps(events, geo)
    assert result["cycles"] == cycle_cost(geo, events)


def test_sim_cycle_count_tapless_events():
    """Kernel 1, stride 2: odd positions have no tap and cost one idle cycle each."""
    geo = {"kernel_h": 1, "kernel_w": 1, "stride_h": 2, "stride_w": 2, "pad_h": 0, "pad_w": 0,
           "out_h": 3, "out_w": 3, "in_h": 5, "in_w": 5, "weight_base": 0, "linear": 0}
    events = [(0, y, x) for y in range(5) for x in range(5)]
    result = measure(geo, events)
    assert len(result["taps"]) == 9
    assert result["cycles"] == cycle_cost(geo, events) == LATENCY + 25


def test_sim_cycle_count_empty_timestep():
    assert measure(conv_geometry(random.Random(9)), [])["cycles"] == LATENCY


@pytest.mark.parametrize("put_pause", [(0, 1), (1, 1, 1, 0), (0, 0, 0, 1, 1, 1, 1, 1)])
def test_sim_cycle_recurrence_with_a_slow_producer(put_pause):
    """Item ``e`` starts in ``max(finish(e - 1), transfer(e) + LATENCY)``, one tap a cycle."""
    rng = random.Random(300 + len(put_pause))
    geo = conv_geometry(rng)
    events = random_events(rng, geo, 20)
    result = measure(geo, events, put_pause=put_pause)
    predicted, finish = [], 0
    for event, transfer in zip(events + [None], result["in_cycles"]):
        start = max(finish, transfer + LATENCY)
        taps = 1 if event is None else len(reference_taps([event], geo))
        predicted.extend(range(start, start + taps))
        finish = start + max(1, taps)
    assert result["out_cycles"] == predicted
