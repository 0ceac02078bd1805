"""Shared data of the board tests: a small design, the shipped digits SNN, images and what the
golden model and the cycle model expect of them (never what the board code computes)."""

import numpy as np

from spikeforge.golden import quantize_input, read_bundle
from spikeforge.golden import run as golden_run
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.cycle_model import predict_from_golden
from spikeforge.rtl.program import build_program
from spikeforge.rtl.sizing import MemorySizes
from spikeforge.data.evaluate import default_bundle_path, load_test_set

#: 4 PEs, memories just big enough for the digits SNN: keeps Verilog builds and
#: simulations short.
SMALL_BOARD = AcceleratorConfig(pes=4, max_positions=64, weight_depth=1536,
                                spike_memory_bits=4096, max_in_channels=256,
                                max_out_channels=64, max_feature_size=16)


#: The memory sizes of the board tests' designs.
SMALL_SIZES = MemorySizes()


def digits(count, *, first=0):
    """The shipped digits network and ``count`` quantized test images from ``first``."""
    network = read_bundle(default_bundle_path())
    test = load_test_set("digits", network, None)
    images = quantize_input(test.x[first:first + count], network.input)
    return network, images


def expectations(network, images, config=SMALL_BOARD, sizes=None):
    """Golden output membranes, predictions, per-layer spike counts and cycle-model cycles."""
    sizes = MemorySizes() if sizes is None else sizes
    program = build_program(network, config, sizes)
    golden = golden_run(network, np.asarray(images), trace=True)
    spiking = [plan.name for plan in program.layers if not (plan.output or plan.pool)]
    return {
        "membranes": golden.output_membrane.astype(int).tolist(),
        "predictions": [int(p) for p in golden.predictions],
        "spikes": [{name: int(golden.spikes[name][:, i].sum()) for name in spiking}
                   for i in range(len(images))],
        "cycles": [predict_from_golden(program, golden, i) for i in range(len(images))],
        "spiking_layers": spiking,
    }
