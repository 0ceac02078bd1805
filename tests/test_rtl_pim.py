# amaranth: UnusedElaboratable=no
"""PIMFirstLayer: the same ports as the reference MAC, first-layer currents equal to the golden
synapse (conv2d and linear, every channel group, signed weights at their extremes, 1- to
16-bit pixels), the walker held back by a busy bit-serial engine (few rows, many bit-planes,
column multiplexing), one write per bank row, and the exact cycle cost."""

import numpy as np
import pytest
from amaranth.back import verilog

from rtl_models import FirstLayerHarness as Harness, read_rows, run_sim
from spikeforge.golden.network import Layer, conv_output_size
from spikeforge.golden.synapse import weighted_current
from spikeforge.rtl.pim_first_layer import PIMFirstLayer, pim_chunks, pim_run_cycles
from spikeforge.rtl.reference_mac import ReferenceMAC

PARAMS = {"weight_bits": 6, "psum_bits": 24, "addr_bits": 7, "pixel_addr_bits": 8,
          "weight_addr_bits": 9, "coord_bits": 4, "channel_bits": 5}


def geometry_of(case, weight_base):
    layer = case.layer
    if layer.type == "linear":
        # Kernel, stride, padding and output fields are ignored for a linear layer.
        return {"kernel_h": 9, "kernel_w": 2, "stride_h": 3, "stride_w": 5, "pad_h": 1,
                "pad_w": 2, "out_h": 4, "out_w": 7, "in_h": case.shape[1], "in_w": case.shape[2],
                "weight_base": weight_base, "linear": 1}
    (in_h, in_w), (out_h, out_w) = layer.in_shape[1:], layer.out_shape[1:]
    return {"kernel_h": layer.kernel[0], "kernel_w": layer.kernel[1],
            "stride_h": layer.stride[0], "stride_w": layer.stride[1],
            "pad_h": layer.padding[0], "pad_w": layer.padding[1], "out_h": out_h, "out_w": out_w,
            "in_h": in_h, "in_w": in_w, "weight_base": weight_base, "linear": 0}


class _Case:
    """A layer (conv2d, or linear on a (C, H, W) image recorded in ``meta``) plus its image."""

    def __init__(self, layer, image, channels, shape=None):
        self.layer, self.image, self.channels, self.shape = layer, image, channels, shape


def conv_case(seed, in_shape, out_channels, kernel, stride, padding, *, weight_bits=6,
              input_bits=8, extreme=False):
    rng = np.random.default_rng(seed)
    out_shape = (out_channels,) + tuple(
        conv_output_size(in_shape[1 + i], kernel[i], stride[i], padding[i]) for i in range(2))
    low, high = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    shape = (out_channels, in_shape[0], *kernel)
    if extreme:  # both extremes of the weight range, largest pixels
        weight = np.where(rng.random(shape) < 0.5, low, high)
        image = np.full(in_shape, (1 << input_bits) - 1)
    else:
        weight = rng.integers(low, high, shape, endpoint=True)
        image = rng.integers(0, 1 << input_bits, in_shape)
    layer = Layer(name="conv", type="conv2d", inputs=("input",), output="spikes",
                  in_shape=tuple(in_shape), out_shape=out_shape, weight=weight.astype(np.int8),
                  bias=rng.integers(-3000, 3000, out_channels).astype(np.int32),
                  weight_bits=weight_bits, kernel=tuple(kernel), stride=tuple(stride),
                  padding=tuple(padding))
    return _Case(layer, image, in_shape[0])


def linear_case(seed, shape, out_channels, *, input_bits=8):
    rng = np.random.default_rng(seed)
    features = int(np.prod(shape))
    weight = rng.integers(-32, 31, (out_channels, features), endpoint=True)
    layer = Layer(name="fc", type="linear", inputs=("input",), output="spikes",
                  in_shape=(features,), out_shape=(out_channels,), weight=weight.astype(np.int8),
                  bias=rng.integers(-3000, 3000, out_channels).astype(np.int32), weight_bits=6)
    return _Case(layer, rng.integers(0, 1 << input_bits, shape), shape[0], shape=shape)


def weight_rows(weight, lanes):
    """Per group, one row per (c_in, ky, kx); lane i = output channel g * lanes + i."""
    out_channels = weight.shape[0]
    flat = weight.reshape(out_channels, -1)
    groups = -(-out_channels // lanes)
    padded = np.zeros((groups * lanes, flat.shape[1]), dtype=np.int64)
    padded[:out_channels] = flat
    return np.concatenate([padded[g * lanes:(g + 1) * lanes].T for g in range(groups)]).tolist(), \
        flat.shape[1]


def run_block(block, case, *, garbage=-5):
    """Run every channel group; return (currents (C_out, positions), cycles, writes)."""
    layer, lanes = case.layer, block.lanes
    rows, per_group = weight_rows(layer.weight, lanes)
    groups = len(rows) // per_group
    positions = int(np.prod(layer.out_shape[1:])) if len(layer.out_shape) > 1 else 1
    bias = np.zeros(groups * lanes, dtype=np.int64)
    bias[:layer.out_shape[0]] = layer.bias
    dut = Harness(block, pixels=[int(v) for v in case.image.reshape(-1)], weights=rows,
                  bank_depth=positions + 2)
    currents = np.zeros((groups * lanes, positions), dtype=np.int64)
    cycles, writes = [], []

    async def testbench(ctx):
        for p in range(positions + 2):  # results must overwrite, not accumulate
            ctx.set(dut.bank[p], [garbage] * lanes)
        ctx.set(dut.in_channels, case.channels)
        for group in range(groups):
            ctx.set(dut.geometry, geometry_of(case, group * per_group))
            ctx.set(dut.bias, [int(b) for b in bias[group * lanes:(group + 1) * lanes]])
            ctx.set(dut.start, 1)
            seen = []
            for cycle in range(1, 20000):
                _, _, done, w_en, w_addr = await ctx.tick().sample(dut.done, dut.w_en,
                                                                   dut.w_addr)
                ctx.set(dut.start, 0)
                if w_en:
                    seen.append(w_addr)
                if done:
                    break
            await ctx.tick()
            cycles.append(cycle)
            writes.append(seen)
            bank = np.array(read_rows(ctx, dut.bank, lanes, positions + 2), dtype=np.int64)
            currents[group * lanes:(group + 1) * lanes] = bank[:positions].T
            assert (bank[positions:] == garbage).all()

    run_sim(dut, testbench)
    return currents[:layer.out_shape[0]], cycles, writes


def check(block, case):
    currents, cycles, writes = run_block(block, case)
    layer = case.layer
    image = case.image.reshape(1, -1) if layer.type == "linear" else case.image[None]
    want = weighted_current(image, layer, (1 << block.input_bits) - 1)[0]
    np.testing.assert_array_equal(currents, want.reshape(layer.out_shape[0], -1))
    assert writes == [list(range(currents.shape[1]))] * len(writes)
    assert cycles == [block.run_cycles(geometry_of(case, 0), case.channels)] * len(cycles)
    return cycles


def pim(lanes=4, input_bits=8, rows=16, columns=None, weight_bits=6, psum_bits=24):
    return PIMFirstLayer(lanes=lanes, input_bits=input_bits, rows=rows, columns=columns,
                         **{**PARAMS, "weight_bits": weight_bits, "psum_bits": psum_bits})


def _members(signature):
    return [(path, member.flow, member.shape if member.is_port else None)
            for path, member in signature.members.flatten()]


def test_same_interface_as_reference_mac():
    block = pim(rows=5, columns=2)
    assert PIMFirstLayer(lanes=4, input_bits=8, **PARAMS).rows == 9
    assert (block.lanes, block.input_bits, block.weight_bits, block.psum_bits, block.addr_bits,
            block.pixel_addr_bits, block.weight_addr_bits, block.coord_bits, block.channel_bits,
            block.rows, block.columns, block.column_passes) == (4, 8, 6, 24, 7, 8, 9, 4, 5, 5, 2,
                                                                 2)
    assert _members(block.signature) == _members(
        ReferenceMAC(lanes=4, input_bits=8, **PARAMS).signature)
    assert pim().columns == 4


@pytest.mark.parametrize("param, message", [
    ("lanes", "Lane count"), ("input_bits", "Input width"), ("weight_bits", "Weight width"),
    ("psum_bits", "Partial-sum width"), ("addr_bits", "Address width"),
    ("pixel_addr_bits", "Pixel address width"), ("weight_addr_bits", "Weight address width"),
    ("coord_bits", "Coordinate width"), ("channel_bits", "Channel width"),
    ("rows", "Rows in parallel"), ("columns", "Columns in parallel")])
@pytest.mark.parametrize("value", [0, 2.0, True])
def test_init_wrong_parameter(param, message, value):
    params = {"lanes": 4, "input_bits": 8, "rows": 4, "columns": 2, **PARAMS, param: value}
    with pytest.raises(TypeError, match=rf"^{message} must be a positive integer, not {value!r}$"):
        PIMFirstLayer(**params)


def test_init_inconsistent():
    with pytest.raises(ValueError, match=r"^Columns in parallel must divide the lane count "
                                         r"\(4\), not 3$"):
        pim(columns=3)
    with pytest.raises(ValueError, match=r"^Partial-sum width must be at least the weight "
                                         r"width \(6\), not 5$"):
        PIMFirstLayer(lanes=4, input_bits=8, **{**PARAMS, "psum_bits": 5})


def test_run_cycles_by_hand():
    conv = {"kernel_h": 3, "kernel_w": 3, "stride_h": 1, "stride_w": 1, "pad_h": 1, "pad_w": 1,
            "out_h": 2, "out_w": 2, "in_h": 2, "in_w": 2, "weight_base": 0, "linear": 0}
    # A 2x2 image, 3x3 kernel, padding 1: every window holds the 4 pixels, 2 channels: 8 taps.
    assert pim_chunks(conv, 2, 16) == [8, 8, 8, 8]
    assert pim_chunks(conv, 2, 3) == [3, 3, 2] * 4
    # 8-tap chunks, 8 bit-planes: the first closes in cycle 3 + 8 and is handed over at the end
    # of cycle 12; each next one 8 cycles later (fetch-bound).
    assert pim_run_cycles(conv, 2, rows=16, input_bits=8) == 12 + 3 * 8 + 8 + 3
    # 2 bit-planes in 2 column passes: still fetch-bound, the same 8 cycles per chunk.
    assert pim_run_cycles(conv, 2, rows=16, input_bits=2, column_passes=2) == 12 + 24 + 4 + 3
    # 12 bit-planes: compute-bound, 12 cycles per chunk.
    assert pim_run_cycles(conv, 2, rows=16, input_bits=12) == 12 + 3 * 12 + 12 + 3
    linear = {**conv, "linear": 1, "in_h": 3, "in_w": 2}
    assert pim_chunks(linear, 4, 10) == [10, 10, 4]
    # Chunks close in 13, 23, 27; handed over after 14, 24 (>= 14 + 8), 32 (>= 24 + 8).
    assert pim_run_cycles(linear, 4, rows=10, input_bits=8) == 32 + 8 + 3


@pytest.mark.parametrize("lanes, rows, columns, input_bits", [
    (4, 16, None, 8),     # fetch-bound: the 9-tap windows fit one chunk
    (16, 4, None, 8),     # 3 chunks per window, compute-bound: the walker waits
    (4, 9, 1, 3),         # column multiplexing: 4 passes per plane
    (64, 16, 16, 8),
])
def test_sim_digits_conv(lanes, rows, columns, input_bits):
    """The digits network's first layer shape: 1x8x8, 8 channels, 3x3, padding 1."""
    case = conv_case(lanes + rows, (1, 8, 8), 8, (3, 3), (1, 1), (1, 1), input_bits=input_bits)
    check(pim(lanes, input_bits, rows, columns), case)


@pytest.mark.parametrize("kernel, stride, padding", [
    ((3, 2), (2, 1), (1, 1)),
    ((2, 3), (3, 2), (0, 2)),     # strides larger than the kernel, padding > kernel / 2
    ((1, 1), (1, 1), (0, 0)),     # one tap per channel
    ((4, 4), (1, 1), (0, 0)),
])
def test_sim_conv_geometries(kernel, stride, padding):
    case = conv_case(sum(kernel) + sum(stride), (3, 6, 5), 5, kernel, stride, padding)
    check(pim(4, 8, 7, 2), case)


@pytest.mark.parametrize("input_bits, weight_bits", [(1, 2), (16, 8), (8, 8), (4, 3)])
def test_sim_extreme_values(input_bits, weight_bits):
    """Largest pixels and both weight extremes: every product and sum is exact."""
    case = conv_case(input_bits, (2, 4, 4), 4, (3, 3), (1, 1), (0, 0), weight_bits=weight_bits,
                     input_bits=input_bits, extreme=True)
    check(pim(4, input_bits, 5, 2, weight_bits=weight_bits, psum_bits=32), case)


@pytest.mark.parametrize("shape, rows", [((1, 4, 4), 16), ((16, 1, 1), 5), ((2, 3, 2), 1)])
def test_sim_linear(shape, rows):
    """A linear layer on a (C, H, W) image: features c * H * W + y * W + x (C order)."""
    check(pim(4, 8, rows), linear_case(sum(shape) + rows, shape, 6))


def test_sim_back_to_back_runs_and_busy():
    """``busy`` covers the run, ``start`` is ignored while busy, a second run starts at once."""
    case = conv_case(5, (1, 4, 4), 4, (3, 3), (1, 1), (1, 1))
    rows, _ = weight_rows(case.layer.weight, 4)
    dut = Harness(pim(4, 8, 4), pixels=[int(v) for v in case.image.reshape(-1)], weights=rows,
                  bank_depth=16)
    geometry = geometry_of(case, 0)
    cost = pim_run_cycles(geometry, 1, rows=4, input_bits=8)
    trace = []

    async def testbench(ctx):
        ctx.set(dut.geometry, geometry)
        ctx.set(dut.in_channels, 1)
        ctx.set(dut.bias, [int(b) for b in case.layer.bias])
        ctx.set(dut.start, 1)  # held high: restarts right after each done
        for _ in range(2 * cost + 2):
            _, _, busy, done = await ctx.tick().sample(dut.busy, dut.done)
            trace.append((busy, done))

    run_sim(dut, testbench)
    assert [busy for busy, _ in trace[:cost]] == [0] + [1] * (cost - 1)
    assert [i for i, (_, done) in enumerate(trace) if done] == [cost - 1, 2 * cost - 1]
    assert trace[cost][0] == 0


def test_verilog_export_has_no_multiplier():
    text = verilog.convert(pim(4, 8, 4, 2), name="pim_first_layer", emit_src=False)
    assert "module pim_first_layer" in text
    assert " * " not in text  # not one multiply: address products are shift-and-add too
