"""The ``spikeforge`` command line on small bundles built here (``bundle info``, ``golden``)."""

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from spikeforge.golden import network_to_parts, read_bundle, run, write_bundle
from spikeforge.data import evaluate
from spikeforge.tools import options
from spikeforge.tools.cli import main

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
GOLDEN_KEYS = {"accuracy", "images", "timesteps", "synaptic_ops", "spikes", "first_layer_macs",
               "per_layer", "bundle", "dataset", "per_image"}


def _manifest(name, shape, bits, raw_max, layers, dataset):
    return {"format": "spikeforge-bundle", "format_version": 1, "name": name, "timesteps": 4,
            "membrane_bits": 16, "input": {"shape": shape, "bits": bits, "raw_min": 0.0,
                                           "raw_max": raw_max},
            "layers": layers, "dataset": dataset, "metadata": {"note": "test bundle"}}


def make_digits_bundle(path, split=None, seed=1):
    """conv 1->4 (shift leak, bias) -> maxpool -> flatten -> linear 10, 8x8 4-bit input."""
    rng = np.random.default_rng(seed)
    layers = [
        {"name": "conv_a", "type": "conv2d", "output": "spikes", "out_channels": 4,
         "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1], "weight_bits": 4,
         "bias_bits": 8, "out_shape": [4, 8, 8],
         "neuron": {"threshold": 20, "reset": "subtract", "leak": {"kind": "shift", "shift": 3},
                    "v_init": "half"}},
        {"name": "pool_b", "type": "maxpool2d", "output": "spikes", "kernel": [2, 2],
         "out_shape": [4, 4, 4]},
        {"name": "flat_c", "type": "flatten", "output": "spikes", "out_shape": [64]},
        {"name": "dense_d", "type": "linear", "output": "membrane", "out_features": 10,
         "weight_bits": 4, "out_shape": [10], "neuron": {}},
    ]
    dataset = {"name": "digits"} if split is None else {"name": "digits", "split": split}
    arrays = {"conv_a.weight": rng.integers(-8, 8, (4, 1, 3, 3), dtype=np.int8),
              "conv_a.bias": rng.integers(-5, 5, 4).astype(np.int32),
              "dense_d.weight": rng.integers(-8, 8, (10, 64), dtype=np.int8)}
    return write_bundle(path, _manifest("tiny_digits", [1, 8, 8], 4, 16.0, layers, dataset),
                        arrays)


def make_mnist_bundle(path, seed=2):
    rng = np.random.default_rng(seed)
    layers = [
        {"name": "conv1", "type": "conv2d", "output": "spikes", "out_channels": 2,
         "kernel": [4, 4], "stride": [4, 4], "padding": [0, 0], "weight_bits": 3,
         "out_shape": [2, 7, 7], "neuron": {"threshold": 300, "reset": "zero"}},
        {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [98]},
        {"name": "fc", "type": "linear", "output": "membrane", "out_features": 10,
         "weight_bits": 3, "out_shape": [10], "neuron": {}},
    ]
    arrays = {"conv1.weight": rng.integers(-4, 4, (2, 1, 4, 4), dtype=np.int8),
              "fc.weight": rng.integers(-4, 4, (10, 98), dtype=np.int8)}
    return write_bundle(path, _manifest("tiny_mnist", [1, 28, 28], 8, 255.0, layers,
                                        {"name": "mnist"}), arrays)


@pytest.fixture
def digits_bundle(tmp_path):
    path = tmp_path / "digits.sfb"
    return path, make_digits_bundle(path, split={"test_fraction": 0.25, "seed": 0})


def call(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def run_cli(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "spikeforge.tools.cli", *map(str, argv)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def assert_one_line_error(status, out, err, *words):
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("spikeforge: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert str(word) in err


def digits_truth(test_fraction, seed):
    """The test split computed here from scikit-learn, independently of the loaders."""
    digits = load_digits()
    _, x_test, _, y_test = train_test_split(digits.images, digits.target, test_size=test_fraction,
                                            random_state=seed, stratify=digits.target)
    return x_test, y_test


# --------------------------------------------------------------------------- help and bundle info

def test_help_lists_every_command_and_a_session(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("bundle", "golden", "bench"):
        assert f"    {command} " in out
    assert "typical session" in out and "spikeforge golden" in out


def test_bundle_info_table_names_every_layer(capsys, digits_bundle):
    path, network = digits_bundle
    status, out, err = call(capsys, "bundle", "info", path)
    assert status == 0 and err == ""
    table = out.split("\n\n", 1)[1]
    for name in ("conv_a", "pool_b", "flat_c", "dense_d"):
        assert any(line.startswith(name + " ") for line in table.splitlines())
    assert network.content_hash in out
    assert "theta=20 leak=shift>>3 reset=subtract v0=half" in out
    assert "\nmemory         weights " in out
    assert "note" in out and "test bundle" in out


def test_bundle_info_json(capsys, digits_bundle):
    path, _ = digits_bundle
    status, out, _ = call(capsys, "bundle", "info", path, "--json")
    info = json.loads(out)
    assert status == 0
    assert [layer["name"] for layer in info["layers"]] == ["conv_a", "pool_b", "flat_c", "dense_d"]
    assert info["parameters"] == 4 * 9 + 4 + 10 * 64
    assert [layer["parameters"] for layer in info["layers"]] == [40, 0, 0, 640]
    assert info["input"] == {"shape": [1, 8, 8], "bits": 4, "raw_min": 0.0, "raw_max": 16.0}
    assert info["format_version"] == 1 and info["timesteps"] == 4
    assert info["dataset"]["split"] == {"test_fraction": 0.25, "seed": 0}
    assert info["memory_bits"] == read_bundle(path).memory_bits()   # plumbing (counted in
    assert info["layers"][0]["current_shift"] == 0                  # test_rtl_config.py)


def test_bundle_info_names_the_output_layers_own_membrane_width(capsys, digits_bundle,
                                                                 tmp_path):
    path, _ = digits_bundle
    manifest, arrays = network_to_parts(read_bundle(path))
    manifest["layers"][-1]["neuron"]["membrane_bits"] = manifest["membrane_bits"] + 4
    wide = tmp_path / "wide.sfb"
    network = write_bundle(wide, manifest, arrays)
    bits = network.membrane_bits
    status, out, _ = call(capsys, "bundle", "info", wide)
    assert status == 0
    assert f"membrane bits  {bits} (signed, saturating); output layer {bits + 4}\n" in out
    assert f"no firing, leak=none {bits + 4}-bit membrane" in out
    info = json.loads(call(capsys, "bundle", "info", wide, "--json")[1])
    assert [layer["membrane_bits"] for layer in info["layers"]] == [bits, None, None, bits + 4]
    assert "output layer" not in call(capsys, "bundle", "info", path)[1]


def test_default_bundle_path_is_inside_the_package():
    package = Path(importlib.util.find_spec("spikeforge").submodule_search_locations[0])
    assert evaluate.default_bundle_path() == package.resolve() / "models" / "digits_snn.sfb"


def test_bundle_argument_defaults_to_the_shipped_bundle(capsys, tmp_path, monkeypatch):
    shipped = tmp_path / "shipped.sfb"
    monkeypatch.setattr(options, "default_bundle_path", lambda: shipped)
    assert_one_line_error(*call(capsys, "bundle", "info"), shipped, "BUNDLE")
    make_digits_bundle(shipped)
    status, out, _ = call(capsys, "golden", "--limit", 5, "--json")
    assert status == 0 and json.loads(out)["bundle"]["name"] == "tiny_digits"


# --------------------------------------------------------------------------- golden

def test_golden_json_on_digits_matches_an_independent_run(capsys, digits_bundle):
    path, network = digits_bundle
    status, out, err = call(capsys, "golden", path, "--dataset", "digits", "--limit", 20,
                            "--json")
    assert status == 0 and err == ""
    result = json.loads(out)
    assert GOLDEN_KEYS <= set(result)
    assert result["images"] == 20 and result["timesteps"] == 4 and result["dataset"] == "digits"
    assert 0.0 <= result["accuracy"] <= 1.0
    assert result["bundle"]["content_hash"] == network.content_hash

    raw, labels = digits_truth(0.25, 0)
    x = np.clip(np.floor(raw[:20, None] * 15 / 16 + 0.5), 0, 15).astype(np.int64)
    expected = run(network, x)
    assert result["accuracy"] == np.mean(expected.predictions == labels[:20])
    assert result["first_layer_macs"] == int(expected.first_layer_macs.sum())
    assert result["synaptic_ops"] == expected.total_synaptic_ops
    assert result["spikes"] == expected.total_spikes
    layers = {layer["name"]: layer for layer in result["per_layer"]}
    assert layers["conv_a"]["spikes"] == int(expected.spikes["conv_a"].sum())
    assert layers["dense_d"]["synaptic_ops"] == int(expected.synaptic_ops["dense_d"].sum())
    assert result["per_image"]["spikes"] == expected.total_spikes / 20


def test_golden_batching_does_not_change_the_counts(capsys, digits_bundle):
    path, _ = digits_bundle
    results = [json.loads(call(capsys, "golden", path, "--limit", 50, "--batch-size", size,
                               "--json")[1]) for size in (7, 256)]
    assert results[0] == results[1]


def test_golden_uses_the_split_recorded_in_the_bundle(capsys, tmp_path):
    path = tmp_path / "split.sfb"
    network = make_digits_bundle(path, split={"test_fraction": 0.1, "seed": 3})
    result = json.loads(call(capsys, "golden", path, "--json")[1])
    raw, labels = digits_truth(0.1, 3)
    assert result["images"] == len(labels) == 180
    x = np.clip(np.floor(raw[:, None] * 15 / 16 + 0.5), 0, 15).astype(np.int64)
    assert result["correct"] == int((run(network, x).predictions == labels).sum())


def test_golden_text_output(capsys, digits_bundle):
    status, out, _ = call(capsys, "golden", digits_bundle[0], "--limit", 10)
    assert status == 0
    assert "accuracy" in out and "/10 images" in out and "conv_a" in out


def test_golden_on_mnist_with_limit(capsys, tmp_path):
    path = tmp_path / "mnist.sfb"
    network = make_mnist_bundle(path)
    status, out, err = call(capsys, "golden", path, "--dataset", "mnist", "--limit", 40,
                            "--data-dir", SHARED, "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["images"] == 40 and result["dataset"] == "mnist"
    with gzip.open(SHARED / "mnist" / "t10k-images-idx3-ubyte.gz", "rb") as handle:
        pixels = np.frombuffer(handle.read(16 + 40 * 784)[16:], np.uint8)
    with gzip.open(SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz", "rb") as handle:
        labels = np.frombuffer(handle.read(8 + 40)[8:], np.uint8)
    predictions = run(network, pixels.reshape(40, 1, 28, 28).astype(np.int64)).predictions
    assert result["correct"] == int((predictions == labels).sum())


# --------------------------------------------------------------------------- errors

def test_truncated_bundle_is_one_line(tmp_path, digits_bundle):
    path, _ = digits_bundle
    cut = tmp_path / "cut.sfb"
    cut.write_bytes(path.read_bytes()[:200])
    assert_one_line_error(*_status_out_err(run_cli("golden", cut, "--dataset", "digits")), cut)


def test_random_bytes_bundle_is_one_line(tmp_path):
    junk = tmp_path / "junk.sfb"
    junk.write_bytes(np.random.default_rng(0).bytes(3000))
    assert_one_line_error(*_status_out_err(run_cli("bundle", "info", junk)), junk)


def test_missing_bundle_is_one_line(capsys, tmp_path):
    assert_one_line_error(*call(capsys, "bundle", "info", tmp_path / "nope.sfb"), "nope.sfb")


def test_corrupt_mnist_file_is_named(tmp_path):
    bundle = tmp_path / "mnist.sfb"
    make_mnist_bundle(bundle)
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (data / "mnist" / name).write_bytes(gzip.compress(b"\x00\x00\x08\x01")[:-3])
    result = run_cli("golden", bundle, "--dataset", "mnist", "--data-dir", data, "--json")
    assert_one_line_error(*_status_out_err(result), "t10k-images-idx3-ubyte.gz")


def test_missing_indian_pines_file_is_named(capsys, tmp_path, digits_bundle):
    (tmp_path / "data" / "hsi").mkdir(parents=True)
    assert_one_line_error(*call(capsys, "golden", digits_bundle[0], "--dataset", "indian-pines",
                                "--data-dir", tmp_path / "data"), "Indian_pines_corrected.mat")


def test_indian_pines_without_a_patch_description_is_refused(capsys, digits_bundle):
    assert_one_line_error(*call(capsys, "golden", digits_bundle[0], "--dataset", "indian-pines",
                                "--data-dir", SHARED), "145x145", "(1, 8, 8)",
                          "not implemented")


def test_shape_mismatch_names_both_shapes(capsys, digits_bundle):
    assert_one_line_error(*call(capsys, "golden", digits_bundle[0], "--dataset", "mnist",
                                "--data-dir", SHARED), "(1, 28, 28)", "(1, 8, 8)")


@pytest.mark.parametrize("limit", ["0", "-3", "ten", "2.5"])
def test_bad_limit_is_one_line(capsys, digits_bundle, limit):
    assert_one_line_error(*call(capsys, "golden", digits_bundle[0], "--limit", limit), "--limit")


def test_missing_data_dir_is_one_line(capsys, tmp_path, digits_bundle):
    assert_one_line_error(*call(capsys, "golden", digits_bundle[0], "--dataset", "mnist",
                                "--data-dir", tmp_path / "absent"), "absent")


def test_unknown_command_is_one_line(capsys):
    assert_one_line_error(*call(capsys, "frobnicate"), "frobnicate")


def _status_out_err(completed):
    return completed.returncode, completed.stdout, completed.stderr


def test_bundle_info_abbreviates_long_lists_but_json_keeps_them(capsys, tmp_path):
    path = tmp_path / "long.sfb"
    make_digits_bundle(path, split={"test_fraction": 0.25, "seed": 0, "order": list(range(20)),
                                    "few": [1, 2]})
    status, out, _ = call(capsys, "bundle", "info", path)
    assert status == 0
    assert '"order": "<20 values>"' in out and '"few": [1, 2]' in out
    status, out, _ = call(capsys, "bundle", "info", path, "--json")
    assert json.loads(out)["dataset"]["split"]["order"] == list(range(20))
