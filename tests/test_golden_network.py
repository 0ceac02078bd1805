"""Whole networks: the golden model against the naive timestep-major reference.

Random networks (``random_networks.py``) are run by ``spikeforge.golden.run(..., trace=True)``
and by ``naive_reference.run_naive``; every current, membrane and spike of every layer and
timestep must be equal, and so must the predictions, output membranes and op counts.
"""

import numpy as np
import pytest

from naive_reference import run_naive
from random_networks import TEMPLATES, random_input, random_network
from spikeforge.golden import check_input, network_from_parts, network_to_parts, run

SEEDS = range(240)


def _compare(manifest, arrays, x):
    network = network_from_parts(manifest, arrays)
    golden = run(network, x, trace=True)
    naive = run_naive(manifest, arrays, x)
    np.testing.assert_array_equal(golden.predictions, naive.predictions)
    np.testing.assert_array_equal(golden.output_membrane, naive.output_membrane)
    np.testing.assert_array_equal(golden.first_layer_macs, naive.first_layer_macs)
    assert sorted(golden.synaptic_ops) == sorted(naive.synaptic_ops)
    for name, ops in naive.synaptic_ops.items():
        np.testing.assert_array_equal(golden.synaptic_ops[name], ops, err_msg=name)
    assert sorted(golden.spikes) == sorted(naive.spikes)
    for name, count in naive.spikes.items():
        np.testing.assert_array_equal(golden.spikes[name], count, err_msg=name)
    assert sorted(golden.traces) == sorted(naive.traces)
    for name, expected in naive.traces.items():
        trace = golden.traces[name]
        for field, want in zip(("current", "membrane", "spikes"), expected):
            got = getattr(trace, field)
            assert (got is None) == (want is None), f"{name}.{field} presence differs"
            if want is not None:
                np.testing.assert_array_equal(got, want, err_msg=f"{name}.{field}")
    return network, golden


@pytest.mark.parametrize("seed", SEEDS)
def test_random_network_matches_naive(seed):
    manifest, arrays = random_network(seed)
    x = random_input(np.random.default_rng(seed + 10_000), manifest, 3)
    _compare(manifest, arrays, x)


def test_random_networks_cover_the_contract():
    """The generator must actually exercise what the differential test claims to cover."""
    seen = set()
    densities = []
    for seed in SEEDS:
        manifest, arrays = random_network(seed)
        bits = manifest["membrane_bits"]
        seen.add(("template", manifest["metadata"]["template"]))
        network = network_from_parts(manifest, arrays)
        x = random_input(np.random.default_rng(seed + 10_000), manifest, 3)
        result = run(network, x, trace=True)
        kinds = {n: layer.output for n, layer in zip(result.traces, network.layers)}
        for layer in network.layers:
            seen.add(("type", layer.type))
            if layer.stride is not None and max(layer.stride) > 1:
                seen.add(("stride>1", layer.type))
            if layer.padding is not None and max(layer.padding) > 0:
                seen.add(("padding", layer.type))
            if layer.type == "add":
                seen.update(("add input", kinds[s]) for s in layer.inputs)
            if layer.bias is not None:
                seen.add(("bias", True))
            neuron = layer.neuron
            if neuron is None:
                continue
            leak = neuron.leak
            seen.add(("leak", leak.kind))
            if leak.kind == "mul" and leak.factor in (0, 1 << leak.frac_bits):
                seen.add(("mul edge", leak.factor == 0))
            trace = result.traces[layer.name]
            if neuron.threshold is not None:
                seen.update({("reset", neuron.reset), ("v_init", neuron.v_init)})
                seen.add(("threshold", neuron.threshold == 1 or
                          neuron.threshold == (1 << (bits - 1)) - 1))
                densities.append(float(trace.spikes.mean()))
            # The minimum never fires, so it survives the reset; the maximum is only seen
            # unchanged in the non-spiking output layer.
            low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            if (trace.membrane == low).any():
                seen.add(("saturated", "low"))
            if neuron.threshold is None and (trace.membrane == high).any():
                seen.add(("saturated", "high"))
            if leak.kind != "none" and (trace.membrane < 0).any():
                seen.add(("negative leak", leak.kind))
    wanted = {("template", t) for t in TEMPLATES}
    wanted |= {("type", t) for t in ("conv2d", "conv3d", "linear", "maxpool2d", "avgpool2d",
                                     "flatten", "add")}
    wanted |= {("stride>1", "conv2d"), ("stride>1", "conv3d"), ("stride>1", "maxpool2d"),
               ("padding", "conv2d"), ("padding", "conv3d"), ("bias", True),
               ("add input", "spikes"), ("add input", "current"),
               ("leak", "none"), ("leak", "shift"), ("leak", "mul"),
               ("mul edge", True), ("mul edge", False), ("reset", "subtract"), ("reset", "zero"),
               ("v_init", "zero"), ("v_init", "half"), ("threshold", True),
               ("saturated", "low"), ("saturated", "high"),
               ("negative leak", "shift"), ("negative leak", "mul")}
    assert wanted <= seen, f"not covered: {sorted(wanted - seen)}"
    assert min(densities) == 0.0 and max(densities) > 0.9
    assert any(0.2 < d < 0.8 for d in densities)


def test_batch_and_trace_do_not_change_results():
    """A batch gives what each image gives alone, with or without traces."""
    for seed in range(0, 40, 3):
        manifest, arrays = random_network(seed)
        network = network_from_parts(manifest, arrays)
        x = random_input(np.random.default_rng(seed), manifest, 4)
        whole = run(network, x)
        assert whole.traces is None
        for i in range(len(x)):
            alone = run(network, x[i:i + 1], trace=True)
            np.testing.assert_array_equal(alone.output_membrane[0], whole.output_membrane[i])
            np.testing.assert_array_equal(alone.predictions[0], whole.predictions[i])
            for name, ops in whole.synaptic_ops.items():
                np.testing.assert_array_equal(alone.synaptic_ops[name][:, 0], ops[:, i])
            for name, count in whole.spikes.items():
                np.testing.assert_array_equal(alone.spikes[name][:, 0], count[:, i])


# ------------------------------------------------------------------------- argmax ties

def _single_linear(rows, membrane_bits=16):
    """One linear layer, 2 inputs -> len(rows) membrane outputs, T=1, no leak."""
    manifest = {
        "format": "spikeforge-bundle", "format_version": 1, "name": "tie",
        "timesteps": 1, "membrane_bits": membrane_bits,
        "input": {"shape": [2], "bits": 4, "raw_min": 0.0, "raw_max": 15.0},
        "layers": [{"name": "fc", "type": "linear", "output": "membrane",
                    "out_features": len(rows), "out_shape": [len(rows)], "weight_bits": 8,
                    "neuron": {"leak": {"kind": "none"}}}],
    }
    return network_from_parts(manifest, {"fc.weight": np.array(rows, dtype=np.int8)})


def test_argmax_tie_goes_to_lowest_index():
    network = _single_linear([[1, 0], [3, -1], [2, 1], [3, -1]])
    # x = (2, 2): membranes 2, 4, 6, 4 -> class 2; x = (2, 0): 2, 6, 4, 6 -> tie of 1 and 3.
    result = run(network, np.array([[2, 2], [2, 0], [0, 0]]))
    np.testing.assert_array_equal(result.output_membrane, [[2, 4, 6, 4], [2, 6, 4, 6],
                                                           [0, 0, 0, 0]])
    np.testing.assert_array_equal(result.predictions, [2, 1, 0])


def test_argmax_tie_after_saturation():
    # Both rows saturate at the 4-bit maximum 7, so the tie goes to class 0.
    network = _single_linear([[1, 5], [7, 8]], membrane_bits=4)
    result = run(network, np.array([[15, 15]]))
    np.testing.assert_array_equal(result.output_membrane, [[7, 7]])
    np.testing.assert_array_equal(result.predictions, [0])


def test_output_layer_saturates_at_its_own_width():
    # 4-bit hidden width, an 8-bit output layer: 15 * 5 + 15 * 3 = 120 fits 8 bits (<= 127)
    # but saturates a 4-bit membrane at 7; -120 likewise stops at -128 only below it.
    narrow = _single_linear([[5, 3], [-5, -3]], membrane_bits=4)
    manifest, arrays = network_to_parts(narrow)
    manifest["layers"][-1]["neuron"]["membrane_bits"] = 8
    wide = network_from_parts(manifest, arrays)
    x = np.array([[15, 15], [1, 1]])
    np.testing.assert_array_equal(run(narrow, x).output_membrane, [[7, -8], [7, -8]])
    np.testing.assert_array_equal(run(wide, x).output_membrane, [[120, -120], [8, -8]])
    assert wide.layer_membrane_bits(wide.output_layer) == 8
    assert wide.memory_bits()["membranes"] == 2 * 8
    assert network_to_parts(wide)[0]["layers"][-1]["neuron"]["membrane_bits"] == 8


@pytest.mark.parametrize("seed", range(12))
def test_random_network_with_a_wider_output_matches_naive(seed):
    manifest, arrays = random_network(seed, membrane_bits=3, output_membrane_bits=6)
    x = random_input(np.random.default_rng(seed + 10_000), manifest, 3)
    network, golden = _compare(manifest, arrays, x)
    assert network.layer_membrane_bits(network.output_layer) == 6
    assert np.abs(golden.output_membrane).max() <= 32


# ------------------------------------------------------------------------- check_input

@pytest.mark.parametrize("x, match", [
    (np.zeros((2,), dtype=np.int64), r"input batch has shape \(2,\), expected \(N, 2\)"),
    (np.zeros((1, 3), dtype=np.int64), r"input batch has shape \(1, 3\), expected \(N, 2\)"),
    (np.zeros((1, 2), dtype=np.float32), r"dtype float32; quantize it to integers first"),
    (np.zeros((1, 2), dtype=np.float64), r"dtype float64; quantize it to integers first"),
    (np.array([[0, 16]]), r"input values span 0\.\.16, outside .* 4-bit unsigned range 0\.\.15"),
    (np.array([[-1, 3]]), r"input values span -1\.\.3, outside .* 4-bit unsigned range 0\.\.15"),
])
def test_check_input_errors(x, match):
    network = _single_linear([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match=match) as error:
        run(network, x)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=match):
        check_input(network, x)


def test_check_input_accepts_the_full_range_of_any_integer_dtype():
    network = _single_linear([[1, 0], [0, 1]])
    for dtype in (np.uint8, np.int16, np.uint64, np.int64):
        x = check_input(network, np.array([[0, 15]], dtype=dtype))
        assert x.dtype == np.int64
        np.testing.assert_array_equal(x, [[0, 15]])


def with_current_shifts(manifest, seed):
    """``manifest`` with a ``current_shift`` of 1..6 on about 70 % of its neurons (at least
    one); the random generator itself draws none, as the accelerator has none yet."""
    rng = np.random.default_rng(seed)
    neurons = [layer["neuron"] for layer in manifest["layers"] if "neuron" in layer]
    chosen = [n for n in neurons if rng.random() < 0.7] or neurons[-1:]
    for neuron in chosen:
        neuron["current_shift"] = int(rng.integers(1, 7))
    return manifest


@pytest.mark.parametrize("seed", range(40))
def test_random_network_with_current_shifts_matches_naive(seed):
    manifest, arrays = random_network(seed)
    manifest = with_current_shifts(manifest, seed + 20_000)
    x = random_input(np.random.default_rng(seed + 10_000), manifest, 3)
    network, _ = _compare(manifest, arrays, x)
    assert any(layer.neuron is not None and layer.neuron.current_shift
               for layer in network.layers)
