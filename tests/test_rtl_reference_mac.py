# amaranth: UnusedElaboratable=no
"""ReferenceMAC: first-layer currents vs the golden synapse (conv2d and linear, every channel
group), one write per bank row, and the exact cycle cost."""

import dataclasses

import numpy as np
import pytest
from amaranth.back import verilog

from rtl_models import FirstLayerHarness, read_rows, run_sim, vcd_file
from spikeforge.golden.network import Layer, conv_output_size
from spikeforge.golden.synapse import weighted_current
from spikeforge.rtl.reference_mac import OVERHEAD, ReferenceMAC, run_cycles

PARAMS = {"input_bits": 8, "weight_bits": 6, "psum_bits": 20, "addr_bits": 7,
          "pixel_addr_bits": 8, "weight_addr_bits": 8, "coord_bits": 4, "channel_bits": 5}


def conv_geometry(layer, weight_base):
    (in_h, in_w), (out_h, out_w) = layer.in_shape[1:], layer.out_shape[1:]
    return {"kernel_h": layer.kernel[0], "kernel_w": layer.kernel[1],
            "stride_h": layer.stride[0], "stride_w": layer.stride[1],
            "pad_h": layer.padding[0], "pad_w": layer.padding[1], "out_h": out_h, "out_w": out_w,
            "in_h": in_h, "in_w": in_w, "weight_base": weight_base, "linear": 0}


def weight_memory_rows(weight, lanes):
    """``docs/accelerator.md`` weight rows: per group, one row per (c_in, ky, kx), lane i =
    output channel ``g * lanes + i`` (zero past the last channel). Returns (rows, per group)."""
    out_channels = weight.shape[0]
    flat = weight.reshape(out_channels, -1)          # (Co, C_in * K_h * K_w), C order
    groups = -(-out_channels // lanes)
    padded = np.zeros((groups * lanes, flat.shape[1]), dtype=np.int64)
    padded[:out_channels] = flat
    rows = [padded[g * lanes:(g + 1) * lanes].T for g in range(groups)]  # (taps, lanes)
    return np.concatenate(rows).tolist(), flat.shape[1]


def run_mac(lanes, image, layer, geometry_of, in_channels, *, garbage=0, tmp_path=None,
            name="reference_mac"):
    """Run every channel group of ``layer`` on ``image``; return (currents, cycles, writes).

    ``currents`` is (out_channels, positions); ``cycles`` per group counts the start cycle to
    the done cycle inclusive; ``writes`` per group lists the written bank addresses in order.
    """
    rows, per_group = weight_memory_rows(layer.weight, lanes)
    groups = len(rows) // per_group
    out_channels = layer.weight.shape[0]
    positions = int(np.prod(layer.out_shape[1:])) if len(layer.out_shape) > 1 else 1
    bias = np.zeros(groups * lanes, dtype=np.int64)
    bias[:out_channels] = layer.bias
    pixels = [int(v) for v in image.reshape(-1)]
    dut = FirstLayerHarness(ReferenceMAC(lanes=lanes, **PARAMS), pixels=pixels, weights=rows,
                            bank_depth=positions + 2)
    result = {"currents": np.zeros((groups * lanes, positions), dtype=np.int64), "cycles": [],
              "writes": []}

    async def testbench(ctx):
        for p in range(positions + 2):  # results must overwrite, not accumulate
            ctx.set(dut.bank[p], [garbage] * lanes)
        ctx.set(dut.in_channels, in_channels)
        for group in range(groups):
            ctx.set(dut.geometry, geometry_of(group * per_group))
            ctx.set(dut.bias, [int(b) for b in bias[group * lanes:(group + 1) * lanes]])
            ctx.set(dut.start, 1)
            writes = []
            for cycle in range(1, 5000):
                _, _, done, w_en, w_addr = await ctx.tick().sample(dut.done, dut.w_en,
                                                                   dut.w_addr)
                ctx.set(dut.start, 0)
                if w_en:
                    writes.append(w_addr)
                if done:
                    break
            await ctx.tick()
            result["cycles"].append(cycle)
            result["writes"].append(writes)
            bank = np.array(read_rows(ctx, dut.bank, lanes, positions + 2), dtype=np.int64)
            result["currents"][group * lanes:(group + 1) * lanes] = bank[:positions].T
            assert (bank[positions:] == garbage).all()

    run_sim(dut, testbench, vcd=vcd_file(tmp_path, name))
    result["currents"] = result["currents"][:out_channels]
    return result


def conv_layer(rng, in_shape, out_channels, kernel, stride, padding, weight_bits=6):
    out_shape = (out_channels,) + tuple(
        conv_output_size(in_shape[1 + i], kernel[i], stride[i], padding[i]) for i in range(2))
    low, high = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    weight = rng.integers(low, high, (out_channels, in_shape[0], *kernel), endpoint=True)
    return Layer(name="conv", type="conv2d", inputs=("input",), output="spikes",
                 in_shape=tuple(in_shape), out_shape=out_shape, weight=weight.astype(np.int8),
                 bias=rng.integers(-3000, 3000, out_channels).astype(np.int32),
                 weight_bits=weight_bits, kernel=tuple(kernel), stride=tuple(stride),
                 padding=tuple(padding))


def check_conv(lanes, layer, seed, **kwargs):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, layer.in_shape)
    result = run_mac(lanes, image, layer, lambda base: conv_geometry(layer, base),
                     layer.in_shape[0], **kwargs)
    want = weighted_current(image[None], layer, 255)[0].reshape(layer.out_shape[0], -1)
    np.testing.assert_array_equal(result["currents"], want)
    positions = want.shape[1]
    assert result["writes"] == [list(range(positions))] * len(result["writes"])
    assert result["cycles"] == [run_cycles(conv_geometry(layer, 0), layer.in_shape[0])] * len(
        result["cycles"])
    return result


def test_init():
    dut = ReferenceMAC(lanes=4, **PARAMS)
    assert (dut.lanes, dut.input_bits, dut.weight_bits, dut.psum_bits, dut.addr_bits,
            dut.pixel_addr_bits, dut.weight_addr_bits, dut.coord_bits,
            dut.channel_bits) == (4, 8, 6, 20, 7, 8, 8, 4, 5)
    assert set(dut.signature.members.keys()) == {
        "geometry", "in_channels", "bias", "pixels", "weights", "bank", "start", "busy", "done"}


@pytest.mark.parametrize("param, message", [
    ("lanes", "Lane count"), ("input_bits", "Input width"), ("weight_bits", "Weight width"),
    ("psum_bits", "Partial-sum width"), ("addr_bits", "Address width"),
    ("pixel_addr_bits", "Pixel address width"), ("weight_addr_bits", "Weight address width"),
    ("coord_bits", "Coordinate width"), ("channel_bits", "Channel width")])
@pytest.mark.parametrize("value", [0, 2.0, True])
def test_init_wrong_width(param, message, value):
    with pytest.raises(TypeError, match=rf"^{message} must be a positive integer, not {value!r}$"):
        ReferenceMAC(**{"lanes": 4, **PARAMS, param: value})


def test_init_wrong_psum_bits():
    with pytest.raises(ValueError, match=r"^Partial-sum width must be at least the weight "
                                         r"width \(6\), not 5$"):
        ReferenceMAC(lanes=4, **{**PARAMS, "psum_bits": 5})


@pytest.mark.parametrize("lanes", [4, 16, 64])
def test_sim_digits_conv(lanes, tmp_path):
    """The digits network's first layer: 1x8x8, 8 channels, 3x3, padding 1 (2 groups at 4)."""
    layer = conv_layer(np.random.default_rng(lanes), (1, 8, 8), 8, (3, 3), (1, 1), (1, 1))
    result = check_conv(lanes, layer, seed=lanes, garbage=12345, tmp_path=tmp_path,
                        name=f"digits_{lanes}")
    # 22 in-range rows (2 + 6 * 3 + 2) times 22 columns, one tap per cycle.
    assert result["cycles"][0] == OVERHEAD + 22 * 22


@pytest.mark.parametrize("lanes", [4, 16, 64])
def test_sim_non_square_strided(lanes):
    """2 channels on a 7x5 image, kernel 3x2, stride (2, 1), padding (1, 1); 9 channels."""
    layer = conv_layer(np.random.default_rng(7 + lanes), (2, 7, 5), 9, (3, 2), (2, 1), (1, 1))
    check_conv(lanes, layer, seed=lanes + 1, garbage=-77)


@pytest.mark.parametrize("kernel, stride, padding", [
    ((2, 3), (3, 2), (0, 2)),     # strides larger than the kernel, padding > kernel / 2
    ((1, 1), (1, 1), (1, 1)),     # tap-free border positions: bias only, one cycle each
    ((4, 4), (1, 1), (0, 0)),     # no padding
])
def test_sim_conv_geometries(kernel, stride, padding):
    layer = conv_layer(np.random.default_rng(sum(kernel)), (3, 6, 5), 5, kernel, stride,
                       padding)
    check_conv(4, layer, seed=3)


def linear_layer(rng, features, out_channels):
    weight = rng.integers(-32, 31, (out_channels, features), endpoint=True)
    return Layer(name="fc", type="linear", inputs=("input",), output="spikes",
                 in_shape=(features,), out_shape=(out_channels,), weight=weight.astype(np.int8),
                 bias=rng.integers(-3000, 3000, out_channels).astype(np.int32), weight_bits=6)


@pytest.mark.parametrize("lanes", [4, 16, 64])
@pytest.mark.parametrize("shape", [(1, 4, 4), (16, 1, 1), (2, 3, 2)])
def test_sim_linear(lanes, shape):
    """A linear layer on a (C, H, W) image: features c * H * W + y * W + x (C order)."""
    rng = np.random.default_rng(lanes + sum(shape))
    features = int(np.prod(shape))
    layer = linear_layer(rng, features, 6)
    image = rng.integers(0, 256, shape)
    channels, in_h, in_w = shape

    def geometry(base):
        # Kernel, stride, padding and output fields are ignored for a linear layer.
        return {"kernel_h": 9, "kernel_w": 2, "stride_h": 3, "stride_w": 5, "pad_h": 1,
                "pad_w": 2, "out_h": 4, "out_w": 7, "in_h": in_h, "in_w": in_w,
                "weight_base": base, "linear": 1}

    result = run_mac(lanes, image, layer, geometry, channels, garbage=99)
    want = weighted_current(image.reshape(1, -1), layer, 255)[0]
    np.testing.assert_array_equal(result["currents"][:, 0], want)
    assert all(writes == [0] for writes in result["writes"])
    assert result["cycles"] == [OVERHEAD + features] * len(result["cycles"])
    assert run_cycles(geometry(0), channels) == OVERHEAD + features


def test_sim_extreme_values_wrap_free():
    """Largest pixels and weights of both signs: the unsigned x signed products are exact."""
    layer = conv_layer(np.random.default_rng(0), (2, 4, 4), 4, (3, 3), (1, 1), (0, 0))
    weight = np.where(np.arange(layer.weight.size).reshape(layer.weight.shape) % 2, -32, 31)
    layer = dataclasses.replace(layer, weight=weight.astype(np.int8))
    image = np.full(layer.in_shape, 255)
    result = run_mac(4, image, layer, lambda base: conv_geometry(layer, base), 2)
    want = weighted_current(image[None], layer, 255)[0].reshape(4, -1)
    np.testing.assert_array_equal(result["currents"], want)


def test_sim_back_to_back_runs_and_busy():
    """``busy`` covers the run, ``start`` is ignored while busy, a second run starts at once."""
    layer = conv_layer(np.random.default_rng(5), (1, 4, 4), 4, (3, 3), (1, 1), (1, 1))
    image = np.random.default_rng(6).integers(0, 256, (1, 4, 4))
    rows, _ = weight_memory_rows(layer.weight, 4)
    dut = FirstLayerHarness(ReferenceMAC(lanes=4, **PARAMS),
                            pixels=[int(v) for v in image.reshape(-1)], weights=rows, bank_depth=16)
    cost = run_cycles(conv_geometry(layer, 0), 1)
    trace = []

    async def testbench(ctx):
        ctx.set(dut.geometry, conv_geometry(layer, 0))
        ctx.set(dut.in_channels, 1)
        ctx.set(dut.bias, [int(b) for b in layer.bias])
        ctx.set(dut.start, 1)  # held high: restarts right after each done
        for _ in range(2 * cost + 2):
            _, _, busy, done = await ctx.tick().sample(dut.busy, dut.done)
            trace.append((busy, done))

    run_sim(dut, testbench)
    # Cycle 0 samples start; busy from cycle 1 to the done cycle, then the next start cycle.
    assert [busy for busy, _ in trace[:cost]] == [0] + [1] * (cost - 1)
    assert [i for i, (_, done) in enumerate(trace) if done] == [cost - 1, 2 * cost - 1]
    assert trace[cost][0] == 0


def test_verilog_export():
    text = verilog.convert(ReferenceMAC(lanes=4, **PARAMS), name="reference_mac",
                           emit_src=False)
    assert "module reference_mac" in text
