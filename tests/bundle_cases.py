"""A small bundle that uses every layer type, output kind, leak kind and option, and helpers
shared by the bundle tests (``test_bundle.py``, ``test_bundle_file.py``)."""

import numpy as np


def base_bundle():
    """A small network that uses every layer type, output kind, leak kind and option."""
    layers = [
        {"name": "c1", "type": "conv2d", "output": "spikes", "out_channels": 2,
         "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1], "out_shape": [2, 6, 6],
         "weight_bits": 4, "bias_bits": 8,
         "neuron": {"threshold": 10, "reset": "subtract", "v_init": "half",
                    "leak": {"kind": "shift", "shift": 2}}},
        {"name": "c2", "type": "conv2d", "inputs": ["c1"], "output": "current",
         "out_channels": 2, "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1],
         "out_shape": [2, 6, 6], "weight_bits": 3},
        {"name": "res", "type": "add", "inputs": ["c1", "c2"], "scales": [1, -1],
         "output": "spikes", "out_shape": [2, 6, 6],
         "neuron": {"threshold": 3, "reset": "zero",
                    "leak": {"kind": "mul", "factor": 3, "frac_bits": 2}}},
        {"name": "mp", "type": "maxpool2d", "output": "spikes", "kernel": [2, 2],
         "out_shape": [2, 3, 3]},
        {"name": "ap", "type": "avgpool2d", "output": "spikes", "kernel": [2, 2],
         "stride": [1, 1], "out_shape": [2, 2, 2], "neuron": {"threshold": 2, "reset": "zero"}},
        {"name": "fl", "type": "flatten", "output": "spikes", "start_dim": 0, "end_dim": 2,
         "out_shape": [8]},
        {"name": "fc", "type": "linear", "output": "membrane", "out_features": 3,
         "out_shape": [3], "weight_bits": 8, "neuron": {"leak": {"kind": "none"}}},
    ]
    manifest = {
        "format": "spikeforge-bundle", "format_version": 1, "name": "base", "timesteps": 4,
        "membrane_bits": 12,
        "input": {"shape": [1, 6, 6], "bits": 8, "raw_min": 0.0, "raw_max": 16.0},
        "layers": layers, "dataset": {"name": "digits"}, "metadata": {"note": "test"},
    }
    rng = np.random.default_rng(0)
    arrays = {
        "c1.weight": rng.integers(-8, 8, size=(2, 1, 3, 3)).astype(np.int8),
        "c1.bias": np.array([-128, 127], dtype=np.int32),
        "c2.weight": rng.integers(-4, 4, size=(2, 2, 3, 3)).astype(np.int8),
        "fc.weight": rng.integers(-128, 128, size=(3, 8)).astype(np.int8),
    }
    return manifest, arrays


def layer_of(manifest, name):
    return next(obj for obj in manifest["layers"] if obj["name"] == name)


def assert_arrays_equal(left, right):
    assert sorted(left) == sorted(right)
    for key in left:
        assert left[key].dtype == right[key].dtype, key
        np.testing.assert_array_equal(left[key], right[key], err_msg=key)

