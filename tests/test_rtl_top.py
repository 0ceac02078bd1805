# amaranth: UnusedElaboratable=no
"""Top level: construction, the host's memory images (rtl/program.py) and the shipped digits
bundle end to end on the RTL, checked by the scoreboard and the cycle model."""

import pytest
from amaranth.hdl import Fragment

from counter_checks import assert_counters_predicted
from random_networks import random_network
from spikeforge.golden import network_from_parts, quantize_input, read_bundle
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.program import ProgramError, build_program
from spikeforge.rtl.reference_mac import run_cycles
from spikeforge.rtl.top import Top
from spikeforge.rtl.sizing import MemorySizes
from spikeforge.sim.harness import Harness
from spikeforge.data.evaluate import default_bundle_path, load_test_set

SMALL = AcceleratorConfig(pes=4, max_positions=64, weight_depth=512, spike_memory_bits=4096,
                          max_in_channels=64, max_out_channels=64, max_feature_size=16)


@pytest.fixture(scope="module")
def digits():
    network = read_bundle(default_bundle_path())
    test = load_test_set("digits", network, None)
    return network, quantize_input(test.x[:4], network.input)


def test_init():
    top = Top(config=SMALL)
    assert top.config is SMALL
    assert top.sizes == MemorySizes(bias_depth=64, max_layers=16, pixel_depth=4096,
                                    pixel_bits=8)
    assert set(top.signature.members.keys()) == {
        "start", "busy", "done", "cycles", "pe_busy_cycles", "aggregation_busy_cycles",
        "scanner_busy_cycles", "mac_busy_cycles", "overlap_cycles", "host", "trace"}
    assert (top.weights.depth, top.membranes.depth, top.bitmaps[0].depth) == (512, 64, 1024)
    # Elaborate it: the blocks built in rtl/top.py must not warn as unused elaboratables.
    Fragment.get(top, None)


def test_init_wrong_config():
    with pytest.raises(TypeError, match=r"^Config must be an AcceleratorConfig, not 4$"):
        Top(config=4)


@pytest.mark.parametrize("param, message", [
    ("bias_depth", "Bias depth"), ("max_layers", "Layer count"), ("pixel_depth", "Pixel depth"),
    ("pixel_bits", "Pixel width")])
def test_memory_sizes_wrong(param, message):
    with pytest.raises(TypeError, match=rf"^{message} must be a positive integer, not 0$"):
        MemorySizes(**{param: 0})


def test_init_wrong_counter_width():
    with pytest.raises(TypeError, match=r"^Counter width must be a positive integer, not 0$"):
        Top(config=SMALL, counter_bits=0)


def test_init_wrong_sizes():
    with pytest.raises(TypeError, match=r"^Sizes must be MemorySizes, not \{'bias_depth': 64\}$"):
        Top(config=SMALL, sizes={"bias_depth": 64})


def test_program_digits(digits):
    network, _ = digits
    config = AcceleratorConfig(pes=4)
    program = build_program(network, config, MemorySizes(pixel_bits=16))
    assert [p.name for p in program.layers] == ["conv1", "conv2", "fc"]
    # Three layer rows, then one segment row each.
    layers = [row["layer"] for row in program.descriptors[:3]]
    segments = [row["segment"] for row in program.descriptors[3:]]
    assert [d["groups"] for d in layers] == [2, 4, 3]
    assert [d["last"] for d in layers] == [0, 0, 1]
    assert [(d["seg_base"], d["seg_count"]) for d in layers] == [(3, 1), (4, 1), (5, 1)]
    assert [s["mac"] for s in segments] == [1, 0, 0]
    assert len(program.weights) == sum(config.weight_rows(layer) for layer in network.layers)
    # conv2, group 1, tap (c_in=3, ky=2, kx=0): lanes are output channels 4..7.
    conv2 = network.layer("conv2")
    base = layers[1]["weight_base"]
    assert layers[1]["group_stride"] == 8 * 9
    row = program.weights[base + 1 * 8 * 9 + (3 * 3 + 2) * 3 + 0]
    assert row == conv2.weight[4:8, 3, 2, 0].tolist()
    # fc reads conv2's bitmap as a 16x4x4 map: feature c * 16 + y * 4 + x.
    fc = segments[2]
    assert (fc["geometry"]["linear"], fc["geometry"]["in_h"], fc["in_channels"],
            fc["in_sel"]) == (1, 4, 16, layers[1]["out_sel"])
    assert program.biases[layers[2]["bias_base"] + 2] == [
        int(b) for b in network.layer("fc").bias[8:10]] + [0, 0]
    assert layers[0]["neuron"]["membrane_narrow"] == 0


def test_program_refuses_unfit(digits):
    network, _ = digits
    with pytest.raises(ProgramError, match=r"^network 'digits_snn' does not fit the "
                                           r"accelerator: .*layer 'conv1' has 8 output "
                                           r"channels, the config allows 4 \(4 over\)"):
        build_program(network, AcceleratorConfig(pes=4, max_out_channels=4),
                      MemorySizes(pixel_bits=16))


def test_program_residual():
    manifest, arrays = random_network(286, "residual")  # direct current + spikes + current
    network = network_from_parts(manifest, arrays)
    add = next(layer for layer in network.layers if layer.type == "add")
    program = build_program(network, AcceleratorConfig(
        pes=4, leak_multiplier=True, membrane_bits=32, psum_bits=64), MemorySizes(pixel_bits=16))
    assert [s.kind for s in program.layers[-2].segments][0] == "mac"  # the MAC goes first
    # The add is one descriptor; each input is one of its segments; current inputs are fused.
    plan = next(p for p in program.layers if p.name == add.name)
    assert len(plan.segments) == len(add.inputs)
    assert not {p.name for p in program.layers} & {
        name for name in add.inputs if network.layer(name).output == "current"}


def test_program_maxpool():
    manifest, arrays = random_network(1, "conv2d")  # conv2d -> maxpool2d -> flatten -> linear
    network = network_from_parts(manifest, arrays)
    config = AcceleratorConfig(pes=4, leak_multiplier=True, membrane_bits=32, psum_bits=48)
    program = build_program(network, config, MemorySizes(pixel_bits=16))
    layers = [row["layer"] for row in program.descriptors[:len(program.layers)]]
    pool = layers[1]
    assert (pool["pool"], pool["group_stride"], program.layers[1].pool) == (1, 0, True)
    reader = program.descriptors[layers[2]["seg_base"]]["segment"]
    assert reader["in_sel"] == pool["out_sel"] != layers[0]["out_sel"]


def _check_digits(network, images, config):
    harness = Harness(network, config)
    golden = harness.expected(images)
    results = harness.run(images, golden=golden)
    for index, result in enumerate(results):
        assert_counters_predicted([result])
        assert result.prediction == result.expected_prediction
        assert result.output_membrane == golden.output_membrane[index].tolist()
        assert result.spike_counts == {name: int(golden.spikes[name][:, index].sum())
                                       for name in ("conv1", "conv2")}
        counters = result.counters
        first = harness.program.descriptors[len(harness.program.layers)]["segment"]
        mac = run_cycles(first["geometry"], 1) - 1
        assert counters["mac_busy_cycles"] == config.groups(network.layer("conv1")) * mac
        assert counters["overlap_cycles"] > 0
        assert 0 < counters["pe_busy_cycles"] < counters["cycles"]
    return results


def test_sim_digits(digits):
    network, images = digits
    _check_digits(network, images[:2], AcceleratorConfig())


def test_sim_digits_pes16(digits):
    network, images = digits
    _check_digits(network, images[2:3], AcceleratorConfig(pes=16))


def test_sim_digits_pes4_group_tiling(digits):
    network, images = digits
    results = _check_digits(network, images[3:4], AcceleratorConfig(pes=4))
    assert results[0].cycles > 8000  # 2 + 4 + 3 groups instead of 1 + 1 + 1


def test_sim_digits_maps_as_wide_as_the_coordinates_allow(digits):
    # max_feature_size 8 gives 3-bit coordinates while the 8x8 input map's width needs 4 bits:
    # the descriptor's map widths must not wrap to 0.
    network, images = digits
    _check_digits(network, images[:1], AcceleratorConfig(pes=16, max_feature_size=8))
