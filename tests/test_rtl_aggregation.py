# amaranth: UnusedElaboratable=no
"""The aggregation core against ``golden.neuron.aggregate``: exact equality, every leak kind,
both resets, saturation at both ends, back-pressure and full throughput."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl_models import run_sim, vcd_file
from spikeforge.golden.network import Leak, Neuron, int_range
from spikeforge.golden.neuron import aggregate, apply_leak
from spikeforge.rtl.aggregation import AggregationCore
from spikeforge.rtl.interfaces import (
    LeakKind, aggregation_input_layout, aggregation_output_layout, neuron_params_layout,
)
from spikeforge.sim.streams import stream_get_all, stream_put_all

KINDS = {"none": LeakKind.NONE, "shift": LeakKind.SHIFT, "mul": LeakKind.MUL}


# --------------------------------------------------------------------------- helpers

def params(*, threshold=1, leak=Leak(), reset="subtract", fire=True, narrow=0, shift=0):
    """A ``neuron_params_layout`` value plus the golden :class:`Neuron` it stands for."""
    value = {"threshold": threshold, "leak_kind": KINDS[leak.kind], "leak_shift": leak.shift,
             "leak_factor": leak.factor, "leak_frac_bits": leak.frac_bits,
             "reset_to_zero": int(reset == "zero"), "fire": int(fire),
             "membrane_narrow": narrow, "current_shift": shift}
    return value, Neuron(threshold if fire else None, leak, reset, current_shift=shift)


def random_rows(rng, count, lanes, width, psum_bits, neuron):
    """(membranes, currents) of ``count`` rows that hit every corner of the update.

    Membranes span the network's ``width``, with its extremes, 0 and -1 mixed in. Currents
    mix small values, the full partial-sum range (saturation at both ends) and the exact
    current that lands ``V`` on the threshold, or one below it.
    """
    low, high = int_range(width)
    p_low, p_high = int_range(psum_bits)
    membranes = rng.integers(low, high + 1, size=(count, lanes))
    corners = rng.random((count, lanes))
    membranes[corners < 0.15] = low
    membranes[(corners >= 0.15) & (corners < 0.3)] = high
    membranes[(corners >= 0.3) & (corners < 0.35)] = -1
    membranes[(corners >= 0.35) & (corners < 0.4)] = 0
    small = min(p_high, 1 << width)
    currents = rng.integers(max(p_low, -small), small + 1, size=(count, lanes))
    pick = rng.random((count, lanes))
    wide = pick < 0.2
    currents[wide] = rng.integers(p_low, p_high + 1, size=int(wide.sum()))
    currents[(pick >= 0.2) & (pick < 0.25)] = p_low
    currents[(pick >= 0.25) & (pick < 0.3)] = p_high
    if neuron.threshold is not None:
        exact = neuron.threshold - apply_leak(membranes, neuron.leak) - (pick >= 0.4)
        hit = (pick >= 0.3) & (pick < 0.5) & (exact >= p_low) & (exact <= p_high)
        currents[hit] = exact[hit]
    return membranes.astype(np.int64), currents.astype(np.int64)


@pytest.fixture
def vcd(tmp_path):
    """A waveform path under ``tmp_path`` when ``SPIKEFORGE_VCD`` is set, else ``None``."""
    return vcd_file(tmp_path, "aggregation")


def run_layers(dut, layers, *, put_pause=(0,), get_pause=(0,), check_rules=False, vcd=None):
    """Feed each ``(params value, rows)`` layer, waiting for its last row before changing the
    parameters; return every received payload as (addr, membranes, spikes) tuples."""
    received = []

    async def producer(ctx):
        done = 0
        for value, rows in layers:
            ctx.set(dut.params, value)
            await stream_put_all(ctx, dut.i_stream, rows, pause=put_pause)
            done += len(rows)
            while len(received) < done:
                await ctx.tick()

    async def consumer(ctx):
        # Layer by layer, so that the producer sees each layer complete.
        for _, rows in layers:
            for payload in await stream_get_all(ctx, dut.o_stream, len(rows), pause=get_pause):
                received.append((payload.addr, list(payload.membrane), payload.spikes))

    async def stream_rules(ctx):
        # Rule 2 of amaranth.lib.stream on o_stream: valid and payload hold until the transfer.
        held = None
        async for _, _, valid, ready, payload in ctx.tick().sample(
                dut.o_stream.valid, dut.o_stream.ready, dut.o_stream.payload.as_value()):
            if held is not None:
                assert valid and payload == held, "o_stream dropped or changed a held payload"
            held = payload if valid and not ready else None

    run_sim(dut, producer, consumer, background=[stream_rules] if check_rules else [],
             vcd=vcd)
    return received


def make_layers(rng, lanes, width, psum_bits, neurons, count, narrow=0):
    """Per neuron: its params value, the stream rows and the golden (membranes, spikes)."""
    layers, expected = [], []
    for spec in neurons:
        value, neuron = params(**spec, narrow=narrow)
        membranes, currents = random_rows(rng, count, lanes, width, psum_bits, neuron)
        rows = [{"addr": int(rng.integers(0, 1 << 10)), "current": currents[k].tolist(),
                 "membrane": membranes[k].tolist()} for k in range(count)]
        written, spikes = aggregate(membranes, currents, neuron, width)
        if spikes is None:
            spikes = np.zeros_like(written, dtype=np.uint8)
        layers.append((value, rows))
        expected.extend((row["addr"], written[k].tolist(),
                         int(sum(int(s) << lane for lane, s in enumerate(spikes[k]))))
                        for k, row in enumerate(rows))
    return layers, expected


def neuron_specs(rng, width, *, multiplier=True):
    """Every leak kind (mul edge factors 0 and 2**q included), both resets, fire = 0, and the
    extreme thresholds 1 and 2**(width-1) - 1."""
    high = int_range(width)[1]

    def threshold():
        return int(rng.integers(1, high + 1))

    q = int(rng.integers(1, 17))
    specs = [
        dict(threshold=threshold()),
        dict(threshold=threshold(), reset="zero"),
        dict(threshold=1, leak=Leak("shift", shift=int(rng.integers(1, width)))),
        dict(threshold=high, reset="zero", leak=Leak("shift", shift=width - 1)),
        dict(threshold=threshold(), fire=False, leak=Leak("shift", shift=1)),
        dict(threshold=threshold(), fire=False),
    ]
    if multiplier:
        specs += [
            dict(threshold=threshold(), leak=Leak("mul", factor=0, frac_bits=q)),
            dict(threshold=threshold(), reset="zero", leak=Leak("mul", factor=1 << q,
                                                                frac_bits=q)),
            dict(threshold=threshold(), leak=Leak("mul", factor=int(rng.integers(0, 1 << 16)),
                                                  frac_bits=16)),
            dict(threshold=threshold(), fire=False, leak=Leak("mul", factor=230, frac_bits=8)),
            dict(threshold=threshold(), leak=Leak("mul", factor=1 << 16, frac_bits=16)),
        ]
    return specs


def make_dut(lanes=4, psum_bits=12, membrane_bits=8, leak_multiplier=True,
             current_shifter=False):
    return AggregationCore(lanes=lanes, psum_bits=psum_bits, membrane_bits=membrane_bits,
                           addr_bits=10, leak_multiplier=leak_multiplier,
                           current_shifter=current_shifter)


# --------------------------------------------------------------------------- construction

def test_init():
    dut = AggregationCore(lanes=16, psum_bits=24, membrane_bits=16, addr_bits=10,
                          leak_multiplier=True)
    assert (dut.lanes, dut.psum_bits, dut.membrane_bits, dut.addr_bits, dut.leak_multiplier) \
        == (16, 24, 16, 10, True)
    assert dut.signature.members == wiring.Signature({
        "params": In(neuron_params_layout(16)),
        "i_stream": In(stream.Signature(aggregation_input_layout(
            addr_bits=10, lanes=16, psum_bits=24, membrane_bits=16))),
        "o_stream": Out(stream.Signature(aggregation_output_layout(
            addr_bits=10, lanes=16, membrane_bits=16))),
    }).members
    assert make_dut().leak_multiplier is True
    assert AggregationCore(lanes=1, psum_bits=2, membrane_bits=2, addr_bits=1).leak_multiplier \
        is False


@pytest.mark.parametrize("value", [0, -1, 2.0, "4", True])
def test_init_wrong_lanes(value):
    with pytest.raises(TypeError, match=rf"^Lane count must be a positive integer, not "
                                        rf"{value!r}$"):
        AggregationCore(lanes=value, psum_bits=12, membrane_bits=8, addr_bits=4)


@pytest.mark.parametrize("value", [1, 65, 8.0, None])
def test_init_wrong_psum_bits(value):
    with pytest.raises(TypeError, match=rf"^Partial-sum width must be an integer in 2\.\.64, "
                                        rf"not {value!r}$"):
        AggregationCore(lanes=4, psum_bits=value, membrane_bits=8, addr_bits=4)


@pytest.mark.parametrize("value", [1, 33, False])
def test_init_wrong_membrane_bits(value):
    with pytest.raises(TypeError, match=rf"^Membrane width must be an integer in 2\.\.32, "
                                        rf"not {value!r}$"):
        AggregationCore(lanes=4, psum_bits=12, membrane_bits=value, addr_bits=4)


@pytest.mark.parametrize("value", [0, "10"])
def test_init_wrong_addr_bits(value):
    with pytest.raises(TypeError, match=rf"^Address width must be a positive integer, not "
                                        rf"{value!r}$"):
        AggregationCore(lanes=4, psum_bits=12, membrane_bits=8, addr_bits=value)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_init_wrong_leak_multiplier(value):
    with pytest.raises(TypeError, match=rf"^Leak multiplier must be a bool, not {value!r}$"):
        AggregationCore(lanes=4, psum_bits=12, membrane_bits=8, addr_bits=4,
                        leak_multiplier=value)


# --------------------------------------------------------------------------- arithmetic

@pytest.mark.parametrize("lanes", [4, 16, 64])
@pytest.mark.parametrize("membrane_bits, psum_bits", [(6, 10), (8, 12), (16, 24), (24, 20)])
def test_sim_random_rows(lanes, membrane_bits, psum_bits, vcd):
    rng = np.random.default_rng([lanes, membrane_bits])
    layers, expected = make_layers(rng, lanes, membrane_bits, psum_bits,
                                   neuron_specs(rng, membrane_bits), count=16)
    dut = make_dut(lanes, psum_bits, membrane_bits)
    assert run_layers(dut, layers, vcd=vcd) == expected


@pytest.mark.parametrize("membrane_bits, width", [(16, 8), (12, 2), (8, 7)])
def test_sim_narrow_membrane(membrane_bits, width):
    """A network with narrower membranes saturates at its own width (``membrane_narrow``)."""
    rng = np.random.default_rng(width)
    layers, expected = make_layers(rng, 16, width, 14, neuron_specs(rng, width), count=6,
                                   narrow=membrane_bits - width)
    assert run_layers(make_dut(16, 14, membrane_bits), layers) == expected


def test_sim_directed_examples():
    """``docs/neuron.md`` sections 3 and 4 by hand (B = 8, theta = 100)."""
    rows = [{"addr": 1, "current": [20, -20, 0, 0], "membrane": [120, -120, 100, -7]}]
    cases = [
        (dict(threshold=100), [27, -128, 0, -7], 0b0101),
        (dict(threshold=100, reset="zero"), [0, -128, 0, -7], 0b0101),
        (dict(threshold=100, fire=False), [127, -128, 100, -7], 0),
        (dict(threshold=100, leak=Leak("shift", shift=2)), [10, -110, 75, -5], 0b0001),
        (dict(threshold=100, leak=Leak("mul", factor=230, frac_bits=8)), [27, -128, 89, -7],
         0b0001),
    ]
    layers = [(params(**spec)[0], rows) for spec, _, _ in cases]
    got = run_layers(make_dut(4, 12, 8), layers)
    assert got == [(1, written, spikes) for _, written, spikes in cases]


def test_sim_no_multiplier_none_and_shift():
    rng = np.random.default_rng(7)
    layers, expected = make_layers(rng, 16, 8, 12, neuron_specs(rng, 8, multiplier=False),
                                   count=6)
    assert run_layers(make_dut(16, 12, 8, leak_multiplier=False), layers) == expected


@pytest.mark.parametrize("membrane_bits, width, psum_bits", [(16, 16, 24), (8, 4, 20),
                                                             (4, 3, 20)])
def test_sim_current_shift(membrane_bits, width, psum_bits):
    """With the shifter the core integrates ``I >>> k`` for every k (docs/neuron.md section
    2), including the largest, and negative currents round toward minus infinity."""
    rng = np.random.default_rng([width, psum_bits])
    specs = neuron_specs(rng, width)
    for spec, shift in zip(specs, [0, 15, 1, 3, 7, 2, 1, 4, 6, 5, 11]):
        spec["shift"] = shift
    layers, expected = make_layers(rng, 16, width, psum_bits, specs, count=8,
                                   narrow=membrane_bits - width)
    dut = make_dut(16, psum_bits, membrane_bits, current_shifter=True)
    assert dut.current_shifter is True
    assert run_layers(dut, layers) == expected


def test_sim_current_shift_directed():
    """``docs/neuron.md`` section 2's example (k = 2): 13 -> 3, -13 -> -4, 3 -> 0."""
    rows = [{"addr": 2, "current": [13, -13, 3, -1], "membrane": [0, 0, 0, 0]}]
    value = params(threshold=100, fire=False, shift=2)[0]
    got = run_layers(make_dut(current_shifter=True), [(value, rows)])
    assert got == [(2, [3, -4, 0, -1], 0)]


def test_sim_no_shifter_current_shift_asserts():
    rows = [{"addr": 0, "current": [1] * 4, "membrane": [5] * 4}]
    with pytest.raises(AssertionError, match=r"current shift selected, but the core has no "
                                             r"shifter"):
        run_layers(make_dut(), [(params(threshold=3, shift=1)[0], rows)])


@pytest.mark.parametrize("value", [1, "yes", None])
def test_init_wrong_current_shifter(value):
    with pytest.raises(TypeError, match=rf"^Current shifter must be a bool, not {value!r}$"):
        AggregationCore(lanes=4, psum_bits=12, membrane_bits=8, addr_bits=4,
                        current_shifter=value)


def test_sim_no_multiplier_mul_leak_asserts():
    rows = [{"addr": 0, "current": [1] * 4, "membrane": [5] * 4}]
    value = params(threshold=3, leak=Leak("mul", factor=3, frac_bits=2))[0]
    with pytest.raises(AssertionError, match=r"multiplicative leak selected, but the core has "
                                             r"no multiplier"):
        run_layers(make_dut(leak_multiplier=False), [(value, rows)])


@pytest.mark.parametrize("spec, message", [
    (dict(threshold=0), r"threshold outside"),
    (dict(threshold=100, narrow=2), r"threshold outside"),
    (dict(threshold=3, leak=Leak("shift", shift=8)), r"leak_shift outside"),
    (dict(threshold=3, leak=Leak("mul", factor=5, frac_bits=2)), r"leak_factor or leak_frac"),
    (dict(threshold=3, narrow=7), r"membrane_narrow leaves"),
])
def test_sim_bad_params_assert(spec, message):
    rows = [{"addr": 0, "current": [1] * 4, "membrane": [5] * 4}]
    with pytest.raises(AssertionError, match=message):
        run_layers(make_dut(), [(params(**spec)[0], rows)])


# --------------------------------------------------------------------------- flow control

@pytest.mark.parametrize("lanes", [4, 16])
@pytest.mark.parametrize("put_pause, get_pause", [
    ((0, 1, 1), (1, 0)), ((1, 1, 1, 0), (0,)), ((0,), (1, 1, 0)), ((0,), (0, 0, 0, 1, 1, 1)),
])
def test_sim_back_pressure(lanes, put_pause, get_pause, vcd):
    rng = np.random.default_rng([lanes, len(put_pause), len(get_pause)])
    specs = neuron_specs(rng, 8)[::3]
    layers, expected = make_layers(rng, lanes, 8, 12, specs, count=8)
    got = run_layers(make_dut(lanes, 12, 8), layers, put_pause=put_pause, get_pause=get_pause,
                     check_rules=True, vcd=vcd)
    assert got == expected


@pytest.mark.parametrize("lanes", [4, 64])
def test_sim_throughput(lanes):
    """With nobody pausing, row k is accepted at cycle k and delivered at cycle k + LATENCY:
    N rows take N + LATENCY - 1 cycles from the first input to the last output transfer."""
    count = 40
    rng = np.random.default_rng(lanes)
    layers, expected = make_layers(rng, lanes, 16, 24, [dict(threshold=1000)], count=count)
    dut = make_dut(lanes, 24, 16)
    inputs, outputs = [], []
    received = []

    async def producer(ctx):
        ctx.set(dut.params, layers[0][0])
        await stream_put_all(ctx, dut.i_stream, layers[0][1])

    async def consumer(ctx):
        for payload in await stream_get_all(ctx, dut.o_stream, count):
            received.append((payload.addr, list(payload.membrane), payload.spikes))

    async def monitor(ctx):
        cycle = 0
        async for _, _, i_valid, i_ready, o_valid, o_ready in ctx.tick().sample(
                dut.i_stream.valid, dut.i_stream.ready, dut.o_stream.valid, dut.o_stream.ready):
            if i_valid and i_ready:
                inputs.append(cycle)
            if o_valid and o_ready:
                outputs.append(cycle)
            cycle += 1

    run_sim(dut, producer, consumer, background=[monitor])
    assert received == expected
    first = inputs[0]
    assert AggregationCore.LATENCY == 3
    assert inputs == list(range(first, first + count))
    assert outputs == list(range(first + 3, first + 3 + count))
    assert outputs[-1] - inputs[0] == count + AggregationCore.LATENCY - 1



def test_verilog_export_with_and_without_platform():
    """The core converts to Verilog; the simulation assertions stay out of platform builds."""
    message = "multiplicative leak selected, but the core has no multiplier"
    text = verilog.convert(make_dut(leak_multiplier=False), name="aggregation")
    assert message in text

    class Platform:  # only tells elaborate() that a platform is present
        pass

    text = verilog.convert(make_dut(leak_multiplier=False), name="aggregation",
                           platform=Platform())
    assert message not in text and "assert" not in text
