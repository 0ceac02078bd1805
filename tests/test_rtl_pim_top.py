# amaranth: UnusedElaboratable=no
"""The PIM block in the accelerator: ``AcceleratorConfig(first_layer=...)`` and its
validation, the shipped digits network end to end with the PIM first layer (4 and 16 PEs,
exact cycles, the block's busy cycles), the harness checking the first layer's currents as
the block writes them, and the PIM-vs-MAC cycle difference the cycle model predicts."""

import pytest
from amaranth.hdl import Fragment

from counter_checks import assert_counters_predicted
from spikeforge.golden import quantize_input, read_bundle
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.cycle_model import predict_from_golden
from spikeforge.rtl.pim_first_layer import PIMFirstLayer, pim_run_cycles
from spikeforge.rtl.program import build_program
from spikeforge.rtl.reference_mac import ReferenceMAC, run_cycles
from spikeforge.rtl.top import Top
from spikeforge.rtl.sizing import MemorySizes
from spikeforge.sim.harness import Harness, Mismatch
from spikeforge.data.evaluate import default_bundle_path, load_test_set

SIZES = MemorySizes(pixel_bits=8)


@pytest.fixture(scope="module")
def digits():
    network = read_bundle(default_bundle_path())
    test = load_test_set("digits", network, None)
    return network, quantize_input(test.x[:3], network.input)


def test_config_first_layer():
    assert AcceleratorConfig().first_layer == "mac"
    config = AcceleratorConfig(pes=8, first_layer="pim", pim_rows=5, pim_columns=4)
    assert (config.pim_rows, config.pim_columns) == (5, 4)
    assert AcceleratorConfig.from_json(config.to_json()) == config
    for top_config, block in ((config, PIMFirstLayer),
                              (AcceleratorConfig(pes=8), ReferenceMAC)):
        top = Top(config=top_config)
        assert isinstance(top.mac, block)
        # Elaborate it: Top builds its blocks in __init__, and an unelaborated block warns.
        Fragment.get(top, None)


@pytest.mark.parametrize("fields, error, message", [
    ({"first_layer": "dsp"}, TypeError, r"First layer must be one of mac, pim, not 'dsp'"),
    ({"pim_rows": 0}, TypeError, r"PIM rows in parallel must be a positive integer, not 0"),
    ({"pim_columns": 3}, ValueError,
     r"PIM columns in parallel must divide the number of PEs \(8\), not 3"),
    ({"spike_bitmaps": 0}, TypeError, r"Spike bitmap count must be an integer in 1..16, not 0"),
])
def test_config_first_layer_wrong(fields, error, message):
    with pytest.raises(error, match=rf"^{message}$"):
        AcceleratorConfig(pes=8, **fields)


@pytest.mark.parametrize("pes", [4, 16])
def test_sim_digits_pim(digits, pes):
    network, images = digits
    config = AcceleratorConfig(pes=pes, first_layer="pim")
    harness = Harness(network, config, sizes=SIZES)
    golden = harness.expected(images[:1])
    result, = harness.run(images[:1], golden=golden)
    assert_counters_predicted([result])
    assert result.output_membrane == golden.output_membrane[0].tolist()
    first = harness.program.descriptors[len(harness.program.layers)]["segment"]
    # 8-bit pixels, 9-tap windows in 9-row chunks: the block's busy cycles per group.
    busy = pim_run_cycles(first["geometry"], 1, rows=9, input_bits=8) - 1
    assert result.counters["mac_busy_cycles"] == config.groups(network.layer("conv1")) * busy


def test_sim_checks_first_layer_currents(digits):
    network, images = digits
    harness = Harness(network, AcceleratorConfig(pes=4, first_layer="pim"), sizes=SIZES)
    golden = harness.expected(images[:1])
    current = golden.traces["conv1"].current.copy()  # broadcast over time: read-only
    current[:, 0, 6, 2, 5] += 1  # channel 6 (group 1), (y, x) = (2, 5)
    golden.traces["conv1"].current = current
    with pytest.raises(Mismatch, match=r"^image 0, cycle \d+: layer 'conv1', neuron "
                                       r"\(channel, y, x\) = \(6, 2, 5\): current expected "):
        harness.run(images[:1], golden=golden)


def test_pim_and_mac_differ_only_in_the_first_layer(digits):
    """Only phase 0 of each conv1 group changes: by the two blocks' run-cycle difference."""
    network, images = digits
    predicted, runs = {}, {}
    for first in ("mac", "pim"):
        config = AcceleratorConfig(pes=4, first_layer=first)
        program = build_program(network, config, SIZES)
        golden = Harness(network, config, sizes=SIZES).expected(images)
        predicted[first] = [predict_from_golden(program, golden, i) for i in range(3)]
        geometry = program.descriptors[len(program.layers)]["segment"]["geometry"]
        runs[first] = (pim_run_cycles(geometry, 1, rows=9, input_bits=8) if first == "pim"
                       else run_cycles(geometry, 1))
    groups = AcceleratorConfig(pes=4).groups(network.layer("conv1"))
    assert [p - m for p, m in zip(predicted["pim"], predicted["mac"])] == \
        [groups * (runs["pim"] - runs["mac"])] * 3
