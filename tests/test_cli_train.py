"""``spikeforge train``: errors, the digits-conv preset, determinism and the lazy torch import."""

import sys

import numpy as np
import pytest

from spikeforge import golden
from spikeforge.golden.bundle import network_to_parts
from spikeforge.tools.cli import main
from spikeforge.data.datasets import DIGITS_SPLIT, digits_split

torch = pytest.importorskip("torch")
torch.set_num_threads(2)


def _run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_train_without_torch_is_one_line_and_exit_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)   # makes `import torch` fail
    status, out, err = _run(["train", "digits-conv", "--out", str(tmp_path / "d.sfb")], capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("spikeforge: error: ")
    assert "spikeforge[train]" in err
    assert not (tmp_path / "d.sfb").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["train", "cifar", "--out", "x.sfb"], "invalid choice: 'cifar'"),
    (["train", "mnist-vgg", "--out", "x.sfb", "--weight-bits", "9"], "outside the supported"),
    (["train", "mnist-vgg", "--out", "x.sfb", "--weight-bits", "1"], "outside the supported"),
    (["train", "mnist-vgg", "--out", "x.sfb", "--epochs", "0"], "not a positive number"),
    (["train", "mnist-vgg"], "--out"),
    (["train", "digits-conv", "--out", "/no/such/folder/x.sfb"], "does not exist"),
])
def test_train_bad_arguments_are_one_line_and_exit_2(argv, fragment, capsys):
    status, out, err = _run(argv, capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and fragment in err


def test_train_mnist_without_the_dataset_is_one_line_and_exit_2(tmp_path, capsys):
    status, out, err = _run(["train", "mnist-resnet", "--out", str(tmp_path / "m.sfb"),
                             "--data-dir", str(tmp_path)], capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "train-images-idx3-ubyte.gz does not exist" in err


def _digits(tmp_path, capsys, name, *extra):
    out = tmp_path / name
    status, text, err = _run(["train", "digits-conv", "--out", str(out), "--epochs", "2",
                              "--train-limit", "300", *extra], capsys)
    assert status == 0, err
    return golden.read_bundle(out), text, err


def test_train_digits_preset_records_metadata_and_is_exact(tmp_path, capsys):
    network, text, err = _digits(tmp_path, capsys, "d.sfb", "--timesteps", "6",
                                 "--weight-bits", "5")
    assert "[float] epoch 2/2" in err and "[qrelu] epoch 2/2" in err
    assert text.startswith("wrote ") and "SNN (golden model)" in text
    meta = network.metadata
    assert meta["preset"] == "digits-conv" and meta["seed"] == 0
    assert meta["epochs"] == {"float": 2, "qat": 2} and meta["training_seconds"] > 0
    assert network.timesteps == 6 and meta["levels"] == 6
    assert all(layer.weight_bits == 5 and np.abs(layer.weight).max() <= 15
               for layer in network.layers if layer.is_synaptic)
    split = digits_split(DIGITS_SPLIT["test_fraction"], DIGITS_SPLIT["seed"])
    x = golden.quantize_input(split.x_test, network.input)
    from test_train_digits import assert_bit_exact

    reference = assert_bit_exact(network, x)
    assert meta["snn_accuracy"] == float(np.mean(reference.predictions == split.y_test))


def test_train_is_deterministic_for_a_seed(tmp_path, capsys):
    first, _, _ = _digits(tmp_path, capsys, "a.sfb", "--seed", "3")
    second, _, _ = _digits(tmp_path, capsys, "b.sfb", "--seed", "3")
    other, _, _ = _digits(tmp_path, capsys, "c.sfb", "--seed", "4")
    manifest_a, arrays_a = network_to_parts(first)
    manifest_b, arrays_b = network_to_parts(second)
    assert arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=key)
    for manifest in (manifest_a, manifest_b):   # the only thing allowed to differ
        manifest["metadata"].pop("training_seconds")
        manifest.pop("content_hash", None)
    assert manifest_a == manifest_b
    _, arrays_c = network_to_parts(other)
    assert any(not np.array_equal(arrays_a[k], arrays_c[k]) for k in arrays_a)
