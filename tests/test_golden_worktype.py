"""The golden model's int32 fast path, tested right at its boundary.

``golden.model`` steps a layer's membrane in ``int32`` when ``2**(B-1) + max|I|`` stays below
``2**31`` (and a multiplicative leak's product fits), else in ``int64``. These networks sit
just inside and just outside that limit, saturate at the top and bottom of a 31-bit
membrane, and must still agree exactly with the naive reference on Python integers.
"""

import numpy as np
import pytest

from naive_reference import run_naive
from spikeforge.golden import network_from_parts, run
from spikeforge.golden.model import _work_dtype
from spikeforge.golden.synapse import current_bound

TOP_PIXEL = (1 << 16) - 1


def _network(features, membrane_bits, leak, sign):
    """Input (features,) of 16-bit pixels -> linear (spiking) -> linear (membrane output)."""
    threshold = (1 << (membrane_bits - 1)) - 1
    manifest = {
        "format": "spikeforge-bundle", "format_version": 1, "name": "edge", "timesteps": 4,
        "membrane_bits": membrane_bits,
        "input": {"shape": [features], "bits": 16, "raw_min": 0, "raw_max": TOP_PIXEL},
        "layers": [
            {"name": "hidden", "type": "linear", "out_features": 2, "weight_bits": 8,
             "output": "spikes", "out_shape": [2],
             "neuron": {"threshold": threshold, "reset": "subtract", "leak": leak}},
            {"name": "out", "type": "linear", "out_features": 2, "weight_bits": 8,
             "output": "membrane", "out_shape": [2], "neuron": {"leak": leak}},
        ],
    }
    # Row 1 (all -128) sets the bound 128 * 65535 * features and saturates downwards; row 0
    # drives the other neuron up (sign 1) or down (sign -1).
    hidden = np.full((2, features), -128, dtype=np.int8)
    hidden[0] = 127 * sign
    arrays = {"hidden.weight": hidden,
              "out.weight": np.array([[127, -128], [-128, 127]], dtype=np.int8)}
    return manifest, arrays


CASES = [
    # features, membrane bits, leak, expected work dtype of "hidden"
    (128, 31, {"kind": "none"}, np.int32),          # 2**30 + 128*65535*128 < 2**31
    (129, 31, {"kind": "none"}, np.int64),          # one more input crosses the limit
    (128, 31, {"kind": "shift", "shift": 3}, np.int32),
    (16, 16, {"kind": "mul", "factor": 60000, "frac_bits": 16}, np.int64),  # 15 + 16 bits
    (16, 16, {"kind": "mul", "factor": 200, "frac_bits": 8}, np.int32),
]


@pytest.mark.parametrize("features, bits, leak, dtype", CASES)
@pytest.mark.parametrize("sign", [1, -1])
def test_work_dtype_boundary_matches_naive(features, bits, leak, dtype, sign):
    manifest, arrays = _network(features, bits, leak, sign)
    network = network_from_parts(manifest, arrays)
    hidden = network.layer("hidden")
    assert _work_dtype(hidden, network, current_bound(hidden.weight, None, TOP_PIXEL)) == dtype
    rng = np.random.default_rng(features + bits)
    x = np.stack([np.full(features, TOP_PIXEL), rng.integers(0, TOP_PIXEL + 1, features),
                  np.zeros(features, dtype=np.int64)])
    golden = run(network, x, trace=True)
    naive = run_naive(manifest, arrays, x)
    for name, (current, membrane, spikes) in naive.traces.items():
        trace = golden.traces[name]
        np.testing.assert_array_equal(trace.current, current, err_msg=name)
        np.testing.assert_array_equal(trace.membrane, membrane, err_msg=name)
        if spikes is not None:
            np.testing.assert_array_equal(trace.spikes, spikes, err_msg=name)
    np.testing.assert_array_equal(golden.output_membrane, naive.output_membrane)
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    membranes = golden.traces["hidden"].membrane
    # The all-max image drives the membrane into saturation, not past it.
    assert membranes.max() <= high and membranes.min() >= low
    if bits == 31:
        assert membranes.min() == low
