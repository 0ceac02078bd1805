"""The golden-vs-snnTorch benchmark: structure and agreement of a tiny run (no timing checks)."""

import json
import sys

import numpy as np
import pytest
import torch

from spikeforge.golden import run
from spikeforge.tools import bench
from spikeforge.tools.cli import main


@pytest.fixture(scope="module")
def tiny():
    return bench.run_benchmark(batch=8, timesteps=8, repeats=1)


def test_tiny_run_has_the_documented_structure(tiny):
    assert tiny["batch"] == 8 and tiny["timesteps"] == 8 and tiny["repeats"] == 1
    assert set(tiny["images_per_s"]) == {"golden", "snntorch"}
    assert all(rate > 0 for rate in tiny["images_per_s"].values())
    assert len(tiny["seconds"]["golden"]) == len(tiny["seconds"]["snntorch"]) == 1
    ratio = tiny["images_per_s"]["golden"] / tiny["images_per_s"]["snntorch"]
    assert tiny["ratio_golden_over_snntorch"] == pytest.approx(ratio)
    json.dumps(tiny)  # JSON-ready


def test_tiny_run_engines_agree_exactly(tiny):
    assert tiny["predictions_agree"] == 8
    assert tiny["membranes_equal"] is True
    assert tiny["spikes"]["golden"] == tiny["spikes"]["snntorch"]
    assert all(count > 0 for count in tiny["spikes"]["golden"].values())


def test_calibrated_spike_rates_are_realistic():
    x, _ = bench.bench_images(32)
    network = bench.build_network(x, timesteps=8)
    result = run(network, x)
    for name in ("conv1", "conv2"):
        rate = result.spikes[name].sum() / (network.layer(name).neurons * 8 * 32)
        assert 0.05 <= rate <= 0.30


def test_snntorch_model_matches_golden_per_timestep():
    """Spikes of every layer and step, not just the final answer (both from the same weights)."""
    x, _ = bench.bench_images(6)
    network = bench.build_network(x, timesteps=5)
    golden = run(network, x, trace=True)
    model = bench.SnnTorchNet(network)
    with torch.inference_mode():
        current = model.conv1(torch.from_numpy(x.astype(np.float32)))
        mem1, mem2 = model.lif1.reset_mem(), model.lif2.reset_mem()
        for t in range(5):
            spk1, mem1 = model.lif1(current, mem1)
            spk2, mem2 = model.lif2(model.conv2(model.pool(spk1)), mem2)
            np.testing.assert_array_equal(spk1.numpy(), golden.traces["conv1"].spikes[t])
            np.testing.assert_array_equal(spk2.numpy(), golden.traces["conv2"].spikes[t])


def test_fire_at_threshold_fires_on_equality():
    spikes = bench.fire_at_threshold(torch.tensor([-1.0, 0.0, 2.0]))
    assert spikes.tolist() == [0.0, 1.0, 1.0]


def test_cli_bench_json(capsys):
    assert main(["bench", "golden", "--batch", "4", "--repeats", "1", "--timesteps", "2",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["batch"] == 4 and result["timesteps"] == 2
    assert result["predictions_agree"] == 4


def test_cli_bench_table(capsys):
    assert main(["bench", "golden", "--batch", "4", "--repeats", "1", "--timesteps", "2"]) == 0
    out = capsys.readouterr().out
    assert "golden (NumPy)" in out and "snnTorch" in out and "agree on 4/4" in out


def test_missing_snntorch_asks_for_the_extra(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "snntorch", None)  # makes `import snntorch` fail
    assert main(["bench", "golden", "--batch", "2", "--repeats", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("spikeforge: error: ") and "pip install spikeforge[bench]" in err
