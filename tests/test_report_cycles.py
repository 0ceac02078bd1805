"""``tools/cycle_causes.py``: the cycle model's total split per layer and cause adds up to
``predict_cycles`` for every shipped topology, both first-layer blocks and several PE counts,
and charges the first layer's sweeps to the drain the way the schedule says."""

from pathlib import Path

import numpy as np
import pytest

from spikeforge.golden import read_bundle
from spikeforge.golden import run as golden_run
from spikeforge.rtl.aggregation import AggregationCore
from spikeforge.rtl.cycle_model import predict_from_golden
from spikeforge.rtl.program import build_program
from spikeforge.tools.cycle_causes import CAUSES, cycle_causes
from spikeforge.rtl.sizing import design_for

MODELS = Path(__file__).resolve().parent.parent / "spikeforge" / "models"


def _images(network, count, seed):
    """Random pixels in the bundle's input range (no dataset needed)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2 ** network.input.bits, size=(count, *network.input.shape))


def _spikes(program, golden, index):
    needed = {source for plan in program.layers for source in plan.sources}
    return {name: golden.traces[name].spikes[:, index] for name in needed}


@pytest.mark.parametrize("model, pes", [("digits_snn.sfb", 64), ("digits_snn.sfb", 4),
                                        ("mnist_resnet.sfb", 64), ("mnist_vgg.sfb", 16)])
@pytest.mark.parametrize("first_layer", ["mac", "pim"])
def test_causes_add_up_to_the_cycle_model(model, pes, first_layer):
    network = read_bundle(MODELS / model)
    design = design_for(network, pes=pes, first_layer=first_layer)
    config, sizes = design.config, design.sizes
    program = build_program(network, config, sizes)
    golden = golden_run(network, _images(network, 2, seed=pes), trace=True)
    for index in range(2):
        split = cycle_causes(program, _spikes(program, golden, index))
        assert split["total"] == predict_from_golden(program, golden, index)
        assert [layer["name"] for layer in split["layers"]] == \
            [plan.name for plan in program.layers]
        for layer in split["layers"]:
            assert set(layer["causes"]) == set(CAUSES)
            assert all(value >= 0 for value in layer["causes"].values())
            assert layer["cycles"] == sum(layer["causes"].values())


def test_direct_layer_sweeps_are_drain():
    """digits conv1 (8 channels of 8x8, one group at 64 PEs) fills once with the MAC, then
    sweeps its 64 positions once per timestep with nothing left to fill."""
    network = read_bundle(MODELS / "digits_snn.sfb")
    design = design_for(network, pes=64)
    config, sizes = design.config, design.sizes
    program = build_program(network, config, sizes)
    golden = golden_run(network, _images(network, 1, seed=0), trace=True)
    first = cycle_causes(program, _spikes(program, golden, 0))["layers"][0]
    sweep = 8 * 8 + AggregationCore.LATENCY + 1
    assert first["causes"]["drain"] == network.timesteps * sweep
    assert first["causes"]["scan"] == 0 and first["causes"]["first_layer"] > 0
