# amaranth: UnusedElaboratable=no
"""``--inputs FILE``: the user's own samples on ``golden``, ``simulate``, ``energy``, ``sweep
membrane`` and ``report``, checked against the golden model run here, and every bad file
refused with one sentence (full message, exit 2, nothing written)."""

import json

import numpy as np
import pytest

from spikeforge.golden import quantize_input, read_bundle, run
from spikeforge.tools.cli import main
from spikeforge.data.datasets import digits_split
from spikeforge.data.evaluate import default_bundle_path
from test_bad_inputs import refused

SHIPPED = read_bundle(default_bundle_path())


def call(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def samples(tmp_path, monkeypatch):
    """``(x, y)``: 12 raw digits test images (0..16) and their labels, saved as d.npz (x, y)
    and d.npy (x only) in the current folder."""
    monkeypatch.chdir(tmp_path)
    split = digits_split(test_fraction=0.25, seed=0)
    x, y = split.x_test[:12], split.y_test[:12]
    np.savez(tmp_path / "d.npz", x=x, y=y)
    np.save(tmp_path / "d.npy", x)
    return x, y


def test_golden_with_labels_gives_accuracy_predictions_and_layers(capsys, samples):
    x, y = samples
    status, out, err = call(capsys, "golden", "--inputs", "d.npz", "--json")
    assert status == 0 and err == ""
    result = json.loads(out)
    expected = run(SHIPPED, quantize_input(x, SHIPPED.input))
    assert result["dataset"] == "inputs" and result["images"] == 12
    assert result["predictions"] == expected.predictions.tolist()
    assert result["correct"] == int((expected.predictions == y).sum())
    assert result["accuracy"] == result["correct"] / 12
    layers = {layer["name"]: layer for layer in result["per_layer"]}
    assert layers["conv2"]["spikes"] == int(expected.spikes["conv2"].sum())
    assert result["synaptic_ops"] == expected.total_synaptic_ops


def test_golden_without_labels_has_no_accuracy(capsys, samples):
    status, out, _ = call(capsys, "golden", "--inputs", "d.npy", "--json")
    result = json.loads(out)
    assert status == 0 and result["accuracy"] is None and result["correct"] is None
    assert len(result["predictions"]) == 12 and result["per_layer"]
    status, out, _ = call(capsys, "golden", "--inputs", "d.npy")
    assert status == 0
    assert "accuracy    - (no labels; 12 images, T=8)" in out
    assert "predictions       " in out


def test_golden_inputs_equal_the_dataset_run(capsys, samples):
    from_file = json.loads(call(capsys, "golden", "--inputs", "d.npz", "--json")[1])
    from_split = json.loads(call(capsys, "golden", "--dataset", "digits", "--limit", 12,
                                 "--json")[1])
    for key in ("correct", "synaptic_ops", "spikes", "first_layer_macs", "per_layer"):
        assert from_file[key] == from_split[key]


def test_energy_inputs_equal_the_dataset_run(capsys, samples):
    from_file = json.loads(call(capsys, "energy", "--inputs", "d.npz", "--images", 5,
                                "--json")[1])
    from_split = json.loads(call(capsys, "energy", "--dataset", "digits", "--images", 5,
                                 "--json")[1])
    assert from_file["dataset"] == "inputs"
    assert {k: v for k, v in from_file.items() if k != "dataset"} == \
        {k: v for k, v in from_split.items() if k != "dataset"}


def test_simulate_inputs_without_labels(capsys, samples):
    status, out, err = call(capsys, "simulate", "--inputs", "d.npy", "--images", 1, "--pes", 16,
                            "--json")
    assert status == 0, err
    summary = json.loads(out)
    assert (summary["dataset"], summary["images"], summary["failed"]) == ("inputs", 1, 0)
    assert summary["correct"] is None and summary["results"][0]["label"] is None
    expected = run(SHIPPED, quantize_input(samples[0][:1], SHIPPED.input))
    assert summary["results"][0]["prediction"] == int(expected.predictions[0])


def test_sweep_inputs_need_labels(capsys, samples, tmp_path):
    status, out, _ = call(capsys, "sweep", "membrane", "--inputs", "d.npz", "--bits", "12",
                          "--json")
    summary = json.loads(out)
    assert status == 0 and summary["dataset"] == "inputs" and summary["images"] == 12
    assert summary["calibration_images"] == 12
    assert summary["calibration_on"] == "--inputs samples"
    refused(capsys, tmp_path, ["sweep", "membrane", "--inputs", "d.npy"],
            "the sweep compares accuracies, so --inputs needs labels: d.npy has no y")


def test_report_inputs(capsys, samples, tmp_path):
    status, out, err = call(capsys, "report", "--inputs", "d.npz", "--images", 4,
                            "--rtl-images", 0, "--out", tmp_path / "report")
    assert status == 0, err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["dataset"] == "inputs" and report["images"] == 4
    golden = json.loads(call(capsys, "golden", "--inputs", "d.npz", "--limit", 4, "--json")[1])
    assert report["golden"]["correct"] == golden["correct"]
    refused(capsys, tmp_path, ["report", "--inputs", "d.npy", "--out", "r2"],
            "the report plots accuracies, so --inputs needs labels: d.npy has no y")


# --------------------------------------------------------------------------- bad files

def _write(kind):
    x = np.zeros((3, 1, 8, 8))
    if kind == "txt":
        np.savetxt("bad.txt", x.reshape(3, -1))
    elif kind == "no-x":
        np.savez("bad.npz", images=x)
    elif kind == "extra":
        np.savez("bad.npz", x=x, y=np.zeros(3, np.int64), z=x)
    elif kind == "corrupt":
        with open("bad.npy", "wb") as handle:
            handle.write(b"\x93NUMPY\x01\x00garbage")
    elif kind == "dtype":
        np.save("bad.npy", x.astype(bool))
    elif kind == "shape":
        np.save("bad.npy", x[:, 0])
    elif kind == "empty":
        np.save("bad.npy", x[:0])
    elif kind == "nan":
        x[1, 0, 2, 3] = np.nan
        np.save("bad.npy", x)
    elif kind == "range":
        x[2, 0, 0, 0] = 17.5
        np.save("bad.npy", x)
    elif kind == "y-dtype":
        np.savez("bad.npz", x=x, y=np.zeros(3))
    elif kind == "y-shape":
        np.savez("bad.npz", x=x, y=np.zeros(4, np.int64))
    elif kind == "y-range":
        np.savez("bad.npz", x=x, y=np.array([0, 10, 2]))


@pytest.mark.parametrize("kind, name, message", [
    ("txt", "bad.txt", "the inputs bad.txt must be a .npy array or a .npz archive with x (and "
                       "optionally y), not a .txt file"),
    ("missing", "none.npy", "the inputs none.npy do not exist or are not a file"),
    ("no-x", "bad.npz", "the inputs bad.npz hold the arrays images; expected x and optionally y"),
    ("extra", "bad.npz", "the inputs bad.npz hold the arrays x, y, z; expected x and optionally "
                         "y"),
    ("corrupt", "bad.npy", "the inputs bad.npy cannot be read as a .npy file (EOF: reading "
                           "array header, expected 24935 bytes got 5)"),   # NumPy's words
    ("dtype", "bad.npy", "the inputs bad.npy have dtype bool; expected integer or float raw "
                         "values"),
    ("shape", "bad.npy", "the inputs bad.npy have shape (3, 8, 8); the bundle 'digits_snn' "
                         "expects (N, 1, 8, 8)"),
    ("empty", "bad.npy", "the inputs bad.npy hold no samples (shape (0, 1, 8, 8))"),
    ("nan", "bad.npy", "the inputs bad.npy contain NaN or infinite values"),
    ("range", "bad.npy", "the inputs bad.npy span 0..17.5, outside the raw range 0..16 of the "
                         "bundle 'digits_snn'"),
    ("y-dtype", "bad.npz", "the labels y in bad.npz have dtype float64; expected integers"),
    ("y-shape", "bad.npz", "the labels y in bad.npz have shape (4,); expected (3,), one per "
                           "sample of x"),
    ("y-range", "bad.npz", "the labels y in bad.npz span 0..10, outside the classes 0..9 of the "
                           "bundle 'digits_snn'"),
])
@pytest.mark.parametrize("command", [["golden"], ["simulate"], ["energy"],
                                     ["sweep", "membrane"]])
def test_bad_inputs_file(capsys, tmp_path, monkeypatch, kind, name, message, command):
    monkeypatch.chdir(tmp_path)
    _write(kind)
    refused(capsys, tmp_path, [*command, "--inputs", name], message)


def test_inputs_and_dataset_together(capsys, samples, tmp_path):
    refused(capsys, tmp_path, ["golden", "--inputs", "d.npz", "--dataset", "digits"],
            "--inputs d.npz replaces the test set; drop --dataset digits")
