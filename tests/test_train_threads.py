"""Training is repeatable under load: the PyTorch thread count comes from the run's settings
(``--threads``, default 1), not from the machine, and is recorded in the bundle. Two
``train digits-conv --seed 3`` runs started at the same time, beside a busy process, give the
same integer arrays and the same manifest apart from the recorded training time."""

import subprocess
import sys

import numpy as np
import pytest

from spikeforge.golden import read_bundle
from spikeforge.golden.bundle import network_to_parts

pytest.importorskip("torch")

_BUSY = ("import numpy as np, time\n"
         "a = np.random.default_rng(0).random((300, 300))\n"
         "end = time.time() + 120\n"
         "while time.time() < end:\n"
         "    a = np.tanh(a @ a)\n")


def _train(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "spikeforge.tools.cli", "train",
                             "digits-conv", "--seed", "3", "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_runs_under_load_are_identical(tmp_path):
    busy = subprocess.Popen([sys.executable, "-c", _BUSY])
    try:
        runs = [_train(tmp_path / "a.sfb"), _train(tmp_path / "b.sfb")]
        for run in runs:
            _, err = run.communicate(timeout=600)
            assert run.returncode == 0, err
    finally:
        busy.kill()
        busy.wait()
    manifest_a, arrays_a = network_to_parts(read_bundle(tmp_path / "a.sfb"))
    manifest_b, arrays_b = network_to_parts(read_bundle(tmp_path / "b.sfb"))
    assert arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=key)
    assert manifest_a["metadata"]["torch_threads"] == 1
    for manifest in (manifest_a, manifest_b):   # the only thing allowed to differ
        manifest["metadata"].pop("training_seconds")
    assert manifest_a == manifest_b


def test_the_thread_count_is_recorded(tmp_path):
    run = _train(tmp_path / "t.sfb", "--threads", "2", "--epochs", "1", "--train-limit", "100")
    _, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    assert read_bundle(tmp_path / "t.sfb").metadata["torch_threads"] == 2
