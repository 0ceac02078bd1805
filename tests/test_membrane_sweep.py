"""The membrane-precision sweep: narrowing rules, exactness where no precision is lost, the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest

import spikeforge
from spikeforge import golden
from spikeforge.golden.bundle import FORMAT_NAME, FORMAT_VERSION, network_to_parts
from spikeforge.tools.cli import main
from spikeforge.data.datasets import digits_split
from spikeforge.data.evaluate import evaluate
from spikeforge.train.membrane import narrow_network, output_peak

DIGITS = Path(spikeforge.__file__).resolve().parent / "models" / "digits_snn.sfb"


def _run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _two_layer(*, theta1, theta2, w2, b2, w3, input_bits=4, membrane_bits=16):
    """input (1x4x4) -> conv 3x3 pad 1 (2 ch, IF) -> conv 3x3 pad 1 (2 ch, IF) -> fc 3."""
    rng = np.random.default_rng(0)
    arrays = {"c1.weight": rng.integers(0, 4, (2, 1, 3, 3)).astype(np.int8),
              "c1.bias": np.array([1, -1], dtype=np.int32),
              "c2.weight": np.asarray(w2, dtype=np.int8),
              "c2.bias": np.asarray(b2, dtype=np.int32),
              "fc.weight": np.asarray(w3, dtype=np.int8)}
    conv = {"type": "conv2d", "output": "spikes", "out_channels": 2, "kernel": [3, 3],
            "stride": [1, 1], "padding": [1, 1], "weight_bits": 8, "bias_bits": 16,
            "out_shape": [2, 4, 4]}
    layers = [
        {**conv, "name": "c1",
         "neuron": {"threshold": theta1, "reset": "subtract", "v_init": "half"}},
        {**conv, "name": "c2",
         "neuron": {"threshold": theta2, "reset": "subtract", "v_init": "half"}},
        {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [32]},
        {"name": "fc", "type": "linear", "output": "membrane", "out_shape": [3],
         "out_features": 3, "weight_bits": 8, "neuron": {}},
    ]
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": "two",
                "timesteps": 6, "membrane_bits": membrane_bits,
                "input": {"shape": [1, 4, 4], "bits": input_bits, "raw_min": 0.0,
                          "raw_max": float((1 << input_bits) - 1)},
                "layers": layers}
    return golden.network_from_parts(manifest, arrays)


def test_spike_layer_is_divided_by_the_smallest_power_of_two_that_fits():
    """theta 100 does not fit 2**(8-2) = 64: k = 1 halves W, b and theta (half to even)."""
    w2 = np.array([[[[5, -3, 0], [7, 1, -1], [2, 2, -8]], [[1, 0, 0], [0, 3, 0], [0, 0, 9]]],
                   [[[-5, 4, 6], [0, 0, 0], [1, 1, 1]], [[2, 2, 2], [-2, -2, -2], [3, 0, -3]]]])
    network = _two_layer(theta1=20, theta2=100, w2=w2, b2=[-7, 11], w3=np.ones((3, 32)))
    narrowed, shifts = narrow_network(network, 8)
    assert narrowed.membrane_bits == 8 and shifts == {"c2": 1}
    c2 = narrowed.layer("c2")
    assert c2.neuron.threshold == 50
    # 5 / 2 -> 2, -3 / 2 -> -2, 7 / 2 -> 4, 1 / 2 -> 0, -1 / 2 -> 0, 9 / 2 -> 4, -8 / 2 -> -4
    assert c2.weight[0, 0].tolist() == [[2, -2, 0], [4, 0, 0], [1, 1, -4]]
    assert c2.weight[0, 1].tolist() == [[0, 0, 0], [0, 2, 0], [0, 0, 4]]
    assert c2.weight[1, 1, 2].tolist() == [2, 0, -2]
    np.testing.assert_array_equal(c2.bias, [-4, 6])                   # -3.5 -> -4, 5.5 -> 6
    # Layers that fit keep their integers exactly.
    np.testing.assert_array_equal(narrowed.layer("c1").weight, network.layer("c1").weight)
    assert narrowed.layer("c1").neuron.threshold == 20 and narrowed.input == network.input


def test_exactly_divisible_layers_give_identical_spikes():
    """Scaling W, b, theta and V0 by one factor changes nothing when every value divides and
    the narrow membrane never saturates (weights 0 or 1 after narrowing: at most 18 + 2 of
    current per step, below theta = 24, so V stays below 24 + 20 < 64)."""
    rng = np.random.default_rng(3)
    w2 = 4 * rng.integers(0, 2, (2, 2, 3, 3))
    network = _two_layer(theta1=12, theta2=96, w2=w2, b2=[8, -4], w3=rng.integers(-5, 6, (3, 32)))
    narrowed, shifts = narrow_network(network, 7)    # limit 32: k = 2 for c2 (96 -> 24)
    assert shifts == {"c2": 2} and narrowed.layer("c2").neuron.threshold == 24
    x = rng.integers(0, 16, (200, 1, 4, 4))
    before, after = golden.run(network, x, trace=True), golden.run(narrowed, x, trace=True)
    for name in ("c1", "c2"):
        np.testing.assert_array_equal(after.traces[name].spikes, before.traces[name].spikes)
        assert before.spikes[name].sum() > 0
    np.testing.assert_array_equal(4 * after.traces["c2"].membrane, before.traces["c2"].membrane)


def test_output_layer_scaled_to_its_calibrated_peak_and_first_layer_through_the_input():
    network = _two_layer(theta1=200, theta2=10, w2=np.ones((2, 2, 3, 3)), b2=[0, 0],
                         w3=np.full((3, 32), 8), input_bits=8)
    # c1: theta 200 > 64 at B = 8 needs k = 2, both from the 8-bit input (weights are 0..3).
    narrowed, shifts = narrow_network(network, 8, peak=1000)
    assert narrowed.input.bits == 6 and shifts["input_bits"] == 6
    ratio = 63 / 255
    assert narrowed.layer("c1").neuron.threshold == int(np.floor(200 * ratio + 0.5))
    np.testing.assert_array_equal(narrowed.layer("c1").weight, network.layer("c1").weight)
    np.testing.assert_array_equal(narrowed.layer("c1").bias, np.floor(np.array([1, -1]) * ratio
                                                                      + 0.5))
    # Output peak 1000 over 127 needs k = 3: fc weights 8 -> 1.
    assert shifts["fc"] == 3 and np.all(narrowed.layer("fc").weight == 1)


def test_output_peak_is_the_largest_membrane_over_time():
    network = _two_layer(theta1=20, theta2=10, w2=np.ones((2, 2, 3, 3)), b2=[0, 0],
                         w3=np.full((3, 32), -3))
    x = np.random.default_rng(1).integers(0, 16, (30, 1, 4, 4))
    trace = golden.run(network, x, trace=True).traces["fc"].membrane
    assert output_peak(network, x, chunk=7) == int(np.abs(trace).max()) > 0


def test_widths_too_narrow_or_malformed_are_refused():
    network = _two_layer(theta1=20, theta2=10, w2=np.ones((2, 2, 3, 3)), b2=[0, 0],
                         w3=np.ones((3, 32)))
    for bits in (3, 0, 8.0, True):
        with pytest.raises(ValueError, match="membrane width"):
            narrow_network(network, bits)


def test_cli_sweep_on_digits_writes_valid_bundles_and_the_16_bit_row_is_the_original(
        tmp_path, capsys):
    status, out, err = _run(["sweep", "membrane", str(DIGITS), "--bits", "16,12,8,6",
                             "--out-dir", str(tmp_path), "--json"], capsys)
    assert status == 0, err
    summary = json.loads(out)
    original = golden.read_bundle(DIGITS)
    split = digits_split(original.dataset["split"]["test_fraction"],
                         original.dataset["split"]["seed"])
    reference = evaluate(original, split.x_test, split.y_test).accuracy
    assert summary["original_accuracy"] == reference and summary["images"] == 450
    assert [row["bits"] for row in summary["rows"]] == [16, 12, 8, 6]
    for row in summary["rows"]:
        narrowed = golden.read_bundle(row["bundle"])       # validated on reading
        assert narrowed.membrane_bits == row["bits"]
        assert Path(row["bundle"]).name == f"digits_snn_m{row['bits']}.sfb"
        top = (1 << (row["bits"] - 2))
        for layer in narrowed.layers:
            if layer.neuron is not None and layer.neuron.threshold is not None:
                assert layer.neuron.threshold <= top
        assert evaluate(narrowed, split.x_test, split.y_test).accuracy == row["accuracy"]
    sixteen = summary["rows"][0]
    assert sixteen["accuracy"] == reference and sixteen["delta"] == 0 and sixteen["shifts"] == {}
    _, arrays = network_to_parts(golden.read_bundle(sixteen["bundle"]))
    _, expected = network_to_parts(original)
    for key in expected:
        np.testing.assert_array_equal(arrays[key], expected[key])
    # Narrower membranes do not help a network trained for 16 bits.
    assert summary["rows"][-1]["accuracy"] <= reference


def test_cli_sweep_prints_a_table(capsys):
    status, out, _ = _run(["sweep", "membrane", "--bits", "16,8"], capsys)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("membrane sweep of digits_snn")
    assert lines[4].split()[0] == "16" and lines[5].split()[0] == "8"


@pytest.mark.parametrize("bits, fragment", [
    ("16,3", "membrane width 3 is outside 4..32"),
    ("16,x", "membrane width 'x' is not a whole number"),
    ("8,8", "membrane width 8 is listed twice"),
    ("40", "membrane width 40 is outside"),
])
def test_cli_sweep_bad_bits_is_one_line_and_exit_2(bits, fragment, capsys):
    status, out, err = _run(["sweep", "membrane", "--bits", bits], capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and fragment in err
