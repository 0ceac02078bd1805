"""docs/api.md's worked example, executed as written: on a subset of MNIST in the quick test,
on all of it behind the ``slow`` marker (where it must reach the documented accuracy)."""

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from spikeforge.rtl.sizing import BOARD_DESIGNS
from spikeforge.data import datasets
from spikeforge.tools.cli import main

torch = pytest.importorskip("torch")

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def _example():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    example = [b for b in blocks if "class SmallCNN" in b]
    assert len(example) == 1
    return example[0]


def _mnist_or_skip():
    folder = datasets.default_data_dir()
    if folder is None or not (Path(folder) / "mnist").is_dir():
        pytest.skip("MNIST is not in ../shared/datasets")
    return datasets.mnist_split(folder)


def _run_example(tmp_path, monkeypatch, split):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "mnist_split", lambda folder: split)
    lines = []
    namespace = {"print": lines.append, "__name__": "api_example"}
    exec(compile(_example(), str(DOC), "exec"), namespace)
    return namespace, lines


def test_api_example_runs_on_a_subset(tmp_path, monkeypatch):
    full = _mnist_or_skip()
    split = replace(full, x_train=full.x_train[:600], y_train=full.y_train[:600],
                    x_test=full.x_test[:100], y_test=full.y_test[:100])
    torch.set_num_threads(2)
    namespace, lines = _run_example(tmp_path, monkeypatch, split)
    result = namespace["result"]
    assert (tmp_path / "small_cnn.sfb").is_file() and result.bundle.name == "small_cnn.sfb"
    assert [layer.name for layer in result.network.layers] == [
        "features_0", "features_3", "features_4", "features_7", "features_8", "features_11",
        "classifier_0", "classifier_2"]
    assert lines[0].startswith("validation: float ") and lines[1].startswith("golden MNIST")
    # The verdict is the PYNQ-Z2 board design's own, and the example is written to fit it
    # (its linear layer reads 64 x 3 x 3 = 576 features; the design takes up to 1024).
    assert result.fits == BOARD_DESIGNS["pynq-z2"].config.fits(result.network)
    assert result.fits and result.fits.reasons == ()
    assert result.validation_images == 60
    assert namespace["test"].images == 100 and namespace["test"].accuracy > 0.3


@pytest.mark.slow
def test_api_example_reaches_its_documented_accuracy(tmp_path, monkeypatch, capsys):
    split = _mnist_or_skip()
    namespace, lines = _run_example(tmp_path, monkeypatch, split)
    assert namespace["test"].images == 10000
    assert namespace["test"].accuracy >= 0.985, lines
    assert np.isfinite(namespace["result"].conversion_loss)
    # The page's next command: the bundle on the RTL of the board design (its Verilog under
    # Verilator, the faster of the two simulators), 3 test images, against the golden model.
    monkeypatch.undo()
    capsys.readouterr()   # the example's own printing
    status = main(["simulate", str(tmp_path / "small_cnn.sfb"), "--dataset", "mnist",
                   "--images", "3", "--simulator", "verilator", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["mismatches"] == 0 and report["cycle_model_mismatches"] == 0
    assert report["images"] == 3
    assert report["design"]["hash"] == f"{BOARD_DESIGNS['pynq-z2'].hash:064x}"
