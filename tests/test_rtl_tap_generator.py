# amaranth: UnusedElaboratable=no
"""TapGenerator: taps vs a plain-loop reference, back-pressure, and the exact cycle cost;
position-packed chunks (``max_pack > 0``) vs a reference written from the packed contract."""

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


def expected_chunks(event, geo):
    """The position-packed items of one conv event, from the packed contract.

    ``P = 2**pack`` positions per partial-sum row, ``stride_w = 1``. Weight row ``(c * K_h +
    ky) * cols + j`` (``cols = ceil(K_w / P)``) holds kernel column ``j * P + P - 1 - i`` in
    slot ``i``. Per valid kernel row (``ky`` ascending), the valid columns (ascending) split
    into chunks, maximal runs of consecutive columns sharing ``kx >> pack``; one item
    ``(out_addr, weight_addr, count, rotate)`` per chunk: the lowest position it lands on (its
    largest ``kx``'s), its weight row, its tap count and ``(p + k + 1) mod P``.
    """
    c, y, x = event
    size = 1 << geo["pack"]
    cols = -(-geo["kernel_w"] // size)
    items = []
    for ky in range(geo["kernel_h"]):
        ty = y + geo["pad_h"] - ky
        oy = ty // geo["stride_h"]
        if ty % geo["stride_h"] or not 0 <= oy < geo["out_h"]:
            continue
        valid = [kx for kx in range(geo["kernel_w"]) if 0 <= x + geo["pad_w"] - kx < geo["out_w"]]
        chunks = []
        for kx in valid:
            prev = chunks[-1][-1] if chunks else None
            if prev is not None and kx == prev + 1 and kx >> geo["pack"] == prev >> geo["pack"]:
                chunks[-1].append(kx)
            else:
                chunks.append([kx])
        for chunk in chunks:
            j = chunk[0] >> geo["pack"]
            slots = [j * size + size - 1 - i for i in range(size)]  # >= K_w: a zero weight
            taps = [(kx, oy * geo["out_w"] + x + geo["pad_w"] - kx) for kx in chunk]
            rotate = (taps[0][1] + taps[0][0] + 1) % size
            for k, p in taps:
                assert (p + k + 1) % size == rotate  # p + k is constant within a chunk
                # What makes the item meaningful: position p's slot p mod P reads weight slot
                # (p mod P - rotate) mod P, which holds p's kernel column k.
                assert slots[(p % size - rotate) % size] == k
            out_addr = taps[-1][1]
            assert sorted(p for _, p in taps) == list(range(out_addr, out_addr + len(chunk)))
            row = (c * geo["kernel_h"] + ky) * cols + j
            items.append((out_addr, geo["weight_base"] + row, len(chunk), rotate))
    return items


def expected_items(events, geo):
    """What the generator emits for ``events`` (no ``end``): packed chunks when
    ``geo["pack"]``, else the unpacked taps."""
    if geo.get("pack"):
        return [chunk for event in events for chunk in expected_chunks(event, geo)]
    return reference_taps(events, geo)


def unpack(items, geo):
    """Packed items back to unpacked taps, as the PE array would apply them: position ``p`` of
    an item takes weight slot ``(p mod P - rotate) mod P`` of its row, i.e. kernel column
    ``j * P + P - 1 - slot``; kernel columns past ``K_w`` must not be reached."""
    size, cols = 1 << geo["pack"], -(-geo["kernel_w"] // (1 << geo["pack"]))
    taps = []
    for out_addr, weight_addr, count, rotate in items:
        assert 1 <= count <= size
        cell, j = divmod(weight_addr - geo["weight_base"], cols)  # cell = c * K_h + ky
        for p in reversed(range(out_addr, out_addr + count)):      # kx ascending
            kx = j * size + size - 1 - (p % size - rotate) % size
            assert kx < geo["kernel_w"]
            taps.append((p, geo["weight_base"] + cell * geo["kernel_w"] + kx))
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


def item(tap, max_pack):
    """A sampled output payload as a tuple: ``(out_addr, weight_addr, end)``, with ``count``
    and ``rotate`` before ``end`` on a packing generator."""
    if max_pack:
        return tap.out_addr, tap.weight_addr, tap.count, tap.rotate, tap.end
    return tap.out_addr, tap.weight_addr, tap.end


def simulate(geo, events, *, put_pause=(0,), get_pause=(0,), name="tap_generator",
             tmp_path=None, max_pack=0):
    """Run one timestep through a fresh DUT; return the taps (``end`` last) as tuples."""
    dut = TapGenerator(**PARAMS, max_pack=max_pack)
    expected_count = len(expected_items(events, geo)) + 1
    received = []

    async def producer(ctx):
        ctx.set(dut.geometry, geo)
        await ctx.tick()  # the geometry is registered: one cycle before the first event
        await stream_put_all(ctx, dut.i_stream, as_payloads(events), pause=put_pause)

    async def consumer(ctx):
        taps = await stream_get_all(ctx, dut.o_stream, expected_count, pause=get_pause)
        received.extend(item(t, max_pack) for t in taps)
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


def measure(geo, events, put_pause=(0,), max_pack=0):
    """Cycle of the end marker's transfer, counted from the first input transfer."""
    dut = TapGenerator(**PARAMS, max_pack=max_pack)
    result = {}

    async def testbench(ctx):
        ctx.set(dut.geometry, geo)
        await ctx.tick()
        in_cycles, received = await lockstep(ctx, dut.i_stream, as_payloads(events),
                                             dut.o_stream, stop=lambda tap: tap.end,
                                             put_pause=put_pause)
        result["cycles"] = received[-1][0] - in_cycles[0]
        result["taps"] = [item(t, max_pack)[:-1] for _, t in received[:-1]]
        result["in_cycles"] = [c - in_cycles[0] for c in in_cycles]
        result["out_cycles"] = [c - in_cycles[0] for c, _ in received]

    run_sim(dut, testbench)
    return result


def cycle_cost(geo, events):
    """The documented cost: ``LATENCY + sum(max(1, taps))`` (chunks when packed)."""
    return LATENCY + sum(max(1, len(expected_items([e], geo))) for e in events)


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


# Position packing (max_pack > 0): chunks of up to 2**pack taps of one kernel row.

PACKINGS = [(2, 1), (2, 2), (1, 1)]  # (max_pack, pack)


def packed_geometry(rng, pack, kernel_w):
    """A random ``stride_w = 1`` conv geometry packed by ``2**pack``: kernel heights 1-7,
    padding ``0 .. K - 1``, ``stride_h`` 1-3, small maps."""
    while True:
        kernel_h, stride_h = rng.randint(1, 7), rng.randint(1, 3)
        pad_h, pad_w = rng.randint(0, kernel_h - 1), rng.randint(0, kernel_w - 1)
        in_h, in_w = rng.randint(1, 9), rng.randint(1, 10)
        out_h = out_size(in_h, kernel_h, stride_h, pad_h)
        out_w = out_size(in_w, kernel_w, 1, pad_w)
        if out_h >= 1 and out_w >= 1:
            return {"kernel_h": kernel_h, "kernel_w": kernel_w, "stride_h": stride_h,
                    "stride_w": 1, "pad_h": pad_h, "pad_w": pad_w, "out_h": out_h,
                    "out_w": out_w, "in_h": in_h, "in_w": in_w,
                    "weight_base": rng.randint(0, 100), "linear": 0, "pack": pack}


def border_events(rng, geo, count, channels=4):
    """Random events, half of each coordinate on the map's border rows/columns."""
    def coord(size):
        return rng.choice([0, size - 1]) if rng.random() < 0.5 else rng.randrange(size)
    return [(rng.randrange(channels), coord(geo["in_h"]), coord(geo["in_w"]))
            for _ in range(count)]


def test_init_max_pack():
    assert TapGenerator(**PARAMS).max_pack == 0
    layout = TapGenerator(**PARAMS).o_stream.payload.shape()
    assert set(layout.members) == {"out_addr", "weight_addr", "end"}
    for max_pack in (1, 2):
        dut = TapGenerator(**PARAMS, max_pack=max_pack)
        assert dut.max_pack == max_pack
        members = dut.o_stream.payload.shape().members
        assert set(members) == {"out_addr", "weight_addr", "end", "count", "rotate"}
        assert (members["count"].width, members["rotate"].width) == (max_pack + 1, max_pack)


@pytest.mark.parametrize("value", [-1, 3, 1.0, True])
def test_init_wrong_max_pack(value):
    with pytest.raises(TypeError, match=rf"^Maximum pack must be an integer in 0\.\.2, not "
                                        rf"{value!r}$"):
        TapGenerator(**PARAMS, max_pack=value)


def test_reference_chunks_by_hand():
    """K_w = 3 packed by 2, pad 1, out_w = 4: rows hold columns (1, 0) and (-, 2)."""
    geo = {"kernel_h": 1, "kernel_w": 3, "stride_h": 1, "stride_w": 1, "pad_h": 0, "pad_w": 1,
           "out_h": 1, "out_w": 4, "in_h": 1, "in_w": 4, "weight_base": 0, "linear": 0,
           "pack": 1}
    # x = 1: columns 0, 1, 2 land on 2, 1, 0: chunk {0, 1} on 1..2, chunk {2} on 0.
    assert expected_chunks((0, 0, 1), geo) == [(1, 0, 2, 1), (0, 1, 1, 1)]
    assert expected_chunks((0, 0, 0), geo) == [(0, 0, 2, 0)]
    # x = 3: columns 1 and 2 are consecutive but in two weight rows: two chunks.
    assert expected_chunks((0, 0, 3), geo) == [(3, 0, 1, 1), (2, 1, 1, 1)]


@pytest.mark.parametrize("pack", [1, 2])
def test_reference_chunks_unpack_to_the_taps(pack):
    """The contract's items, applied slot by slot, are exactly the unpacked taps."""
    rng = random.Random(400 + pack)
    for _ in range(200):
        geo = packed_geometry(rng, pack, rng.randint(1, 7))
        for event in border_events(rng, geo, 5):
            assert unpack(expected_chunks(event, geo), geo) == reference_taps([event], geo)


@pytest.mark.parametrize("kernel_w", range(1, 8))
@pytest.mark.parametrize("max_pack, pack", PACKINGS)
def test_sim_packed_random(max_pack, pack, kernel_w):
    """Every field of every chunk, K_w below, at and past 2**pack, with back-pressure."""
    rng = random.Random(500 + 10 * kernel_w + 3 * max_pack + pack)
    geo = packed_geometry(rng, pack, kernel_w)
    events = border_events(rng, geo, 12)
    pauses = [((0,), (0,)), ((0, 1), (1, 0, 0)), ((1, 1, 0), (0,)), ((0,), (0, 1, 1))]
    put_pause, get_pause = pauses[kernel_w % len(pauses)]
    got = simulate(geo, events, put_pause=put_pause, get_pause=get_pause, max_pack=max_pack)
    assert got[:-1] == [(*chunk, 0) for chunk in expected_items(events, geo)]
    assert got[-1][-1] == 1
    assert unpack([t[:-1] for t in got[:-1]], geo) == reference_taps(events, geo)


def test_sim_packed_corners():
    """Every input position of a padded layer, K_w = 7 packed by 4, stride_h 2."""
    geo = {"kernel_h": 3, "kernel_w": 7, "stride_h": 2, "stride_w": 1, "pad_h": 1, "pad_w": 3,
           "out_h": 3, "out_w": 6, "in_h": 6, "in_w": 6, "weight_base": 5, "linear": 0,
           "pack": 2}
    assert (geo["out_h"], geo["out_w"]) == (out_size(6, 3, 2, 1), out_size(6, 7, 1, 3))
    events = [(c, y, x) for c in (0, 3) for y in range(6) for x in range(6)]
    got = simulate(geo, events, get_pause=(0, 0, 1), max_pack=2)
    assert got[:-1] == [(*chunk, 0) for chunk in expected_items(events, geo)]
    assert got[-1][-1] == 1


@pytest.mark.parametrize("max_pack, pack", PACKINGS)
def test_sim_packed_cycle_count(max_pack, pack):
    """One cycle per chunk (an event without one: one idle cycle), LATENCY unchanged."""
    rng = random.Random(600 + 3 * max_pack + pack)
    for kernel_w in (2, 3, 5, 7):
        geo = packed_geometry(rng, pack, kernel_w)
        events = border_events(rng, geo, 10)
        result = measure(geo, events, max_pack=max_pack)
        assert result["taps"] == expected_items(events, geo)
        assert result["cycles"] == cycle_cost(geo, events)


def test_sim_packed_cycle_recurrence_with_a_slow_producer():
    rng = random.Random(700)
    geo = packed_geometry(rng, 2, 6)
    events = border_events(rng, geo, 16)
    result = measure(geo, events, put_pause=(0, 1, 1), max_pack=2)
    predicted, finish = [], 0
    for event, transfer in zip(events + [None], result["in_cycles"]):
        start = max(finish, transfer + LATENCY)
        items = 1 if event is None else len(expected_chunks(event, geo))
        predicted.extend(range(start, start + items))
        finish = start + max(1, items)
    assert result["out_cycles"] == predicted


@pytest.mark.parametrize("seed", range(4))
def test_sim_pack_0_is_unpacked(seed):
    """pack = 0 on a max_pack = 2 generator: the unpacked taps (count 1, rotate 0) and
    cycles, strides up to MAX_STRIDE and linear layers included."""
    rng = random.Random(800 + seed)
    geo = ({**conv_geometry(rng, max_stride=MAX_STRIDE), "pack": 0} if seed < 3
           else {**linear_geometry(rng), "pack": 0})
    events = random_events(rng, geo, 15)
    got = simulate(geo, events, get_pause=(0, 1) if seed % 2 else (0,), max_pack=2)
    assert got[:-1] == [(a, w, 1, 0, 0) for a, w in reference_taps(events, geo)]
    result = measure(geo, events, max_pack=2)
    assert result["taps"] == [(a, w, 1, 0) for a, w in reference_taps(events, geo)]
    assert result["cycles"] == cycle_cost(geo, events)


def test_sim_packed_layers_in_turn():
    """One generator, timesteps of a pack-2, a pack-0 stride-2 and a pack-1 layer in turn."""
    rng = random.Random(900)
    layers = [packed_geometry(rng, 2, 7), {**conv_geometry(rng), "stride_w": 2, "pack": 0},
              packed_geometry(rng, 1, 5)]
    layers[1]["out_w"] = out_size(layers[1]["in_w"], layers[1]["kernel_w"], 2,
                                  layers[1]["pad_w"])
    steps = [(geo, border_events(rng, geo, 8)) for geo in layers if geo["out_w"] >= 1]
    dut = TapGenerator(**PARAMS, max_pack=2)
    received = []

    async def testbench(ctx):
        for geo, events in steps:
            ctx.set(dut.geometry, geo)
            await ctx.tick()
            await stream_put_all(ctx, dut.i_stream, as_payloads(events))
            while ctx.get(dut.busy):  # the geometry holds until the layer's last tap left
                await ctx.tick()

    async def consumer(ctx):
        for geo, events in steps:
            taps = await stream_get_all(ctx, dut.o_stream, len(expected_items(events, geo)) + 1)
            received.append([item(t, 2) for t in taps])

    run_sim(dut, testbench, consumer)
    for (geo, events), got in zip(steps, received, strict=True):
        expected = [(*chunk, 0) for chunk in expected_items(events, geo)] if geo["pack"] else [
            (a, w, 1, 0, 0) for a, w in reference_taps(events, geo)]
        assert got[:-1] == expected
        assert got[-1][-1] == 1


def test_sim_pack_0_corners():
    """pack = 0, every input position of a strided layer whose rows have gaps (stride_w 2)."""
    geo = {"kernel_h": 5, "kernel_w": 5, "stride_h": 3, "stride_w": 2, "pad_h": 2, "pad_w": 2,
           "out_h": 3, "out_w": 4, "in_h": 7, "in_w": 7, "weight_base": 3, "linear": 0,
           "pack": 0}
    assert (geo["out_h"], geo["out_w"]) == (out_size(7, 5, 3, 2), out_size(7, 5, 2, 2))
    events = [(1, y, x) for y in range(7) for x in range(7)]
    got = simulate(geo, events, max_pack=2)
    assert got[:-1] == [(a, w, 1, 0, 0) for a, w in reference_taps(events, geo)]
    assert measure(geo, events, max_pack=2)["cycles"] == cycle_cost(geo, events)
