# amaranth: UnusedElaboratable=no
"""``spikeforge simulate``: RTL vs golden on digits images, JSON and text output, exit status
1 on a mismatch (with a waveform), 2 on bad input."""

import json

import numpy as np
import pytest

from spikeforge.golden import write_bundle
from spikeforge.rtl.sizing import for_board
from spikeforge.sim import harness as harness_module
from spikeforge.sim.random_networks import random_network
from spikeforge.tools.cli import main


def _run(argv, capsys):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_simulate_json(capsys):
    status, out, err = _run(["simulate", "--dataset", "digits", "--images", "2", "--pes", "16",
                             "--json"], capsys)
    assert status == 0 and err == ""
    summary = json.loads(out)
    assert (summary["images"], summary["mismatches"], summary["failed"]) == (2, 0, 0)
    assert summary["cycles"] == summary["predicted_cycles"]
    assert all(c > 1000 for c in summary["cycles"])
    assert [r["prediction"] for r in summary["results"]] == \
        [r["golden_prediction"] for r in summary["results"]]


def test_simulate_on_narrow_membrane_memories(tmp_path, capsys):
    # A network with 4-bit membranes and an 8-bit output layer on the board design with 4-bit
    # membrane memories: the design is the board's but for that width, the shifter and the
    # 8-bit output membrane memory, and the RTL agrees with the golden model.
    manifest, arrays = random_network(1, "pooled", membrane_bits=4, output_membrane_bits=8)
    write_bundle(tmp_path / "narrow.sfb", manifest, arrays)
    raw = np.random.default_rng(0).uniform(0.0, 1.0, (2, *manifest["input"]["shape"]))
    np.save(tmp_path / "x.npy", raw)
    status, out, err = _run(["simulate", tmp_path / "narrow.sfb", "--inputs", tmp_path / "x.npy",
                             "--images", "2", "--pes", "4", "--membrane-bits", "4", "--json"],
                            capsys)
    assert status == 0, err
    summary = json.loads(out)
    board = for_board("pynq-z2", pes=4).config.to_json()
    assert summary["design"]["config"] == {**board, "membrane_bits": 4, "current_shifter": True,
                                           "output_membrane_bits": 8}
    assert (summary["images"], summary["mismatches"], summary["failed"]) == (2, 0, 0)
    assert summary["cycles"] == summary["predicted_cycles"]


def test_simulate_text(capsys):
    status, out, _ = _run(["simulate", "--images", "1", "--pes", "16"], capsys)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("RTL vs golden: ") and "16 PEs, 1 images" in lines[0]
    assert lines[2].split()[:2] == ["0", "pass"]
    assert lines[2].split()[2] == lines[2].split()[3]
    assert lines[-1].startswith("mismatches: 0, cycle-model disagreements: 0")


def test_simulate_mismatch_exits_1_with_a_waveform(capsys, monkeypatch, tmp_path):
    real = harness_module.golden_run

    def wrong(network, x, *, trace=False):
        result = real(network, x, trace=trace)
        result.traces["conv2"].membrane[3, 0, 5, 1, 2] += 1  # timestep 4, neuron (5, 1, 2)
        return result

    monkeypatch.setattr(harness_module, "golden_run", wrong)
    status, out, _ = _run(["simulate", "--images", "1", "--pes", "16", "--vcd", tmp_path,
                           "--json"], capsys)
    assert status == 1
    summary = json.loads(out)
    assert (summary["mismatches"], summary["failed"], summary["cycles"]) == (1, 1, [None])
    message = summary["results"][0]["mismatch"]
    assert "layer 'conv2', timestep 4, neuron (channel, y, x) = (5, 1, 2): membrane" in message
    assert (tmp_path / "image0.vcd").stat().st_size > 0


@pytest.mark.parametrize("argv, fragment", [
    (["simulate", "--images", "0"], "not a positive number"),
    (["simulate", "--pes", "x"], "not a whole number"),
    (["simulate", "--pes", "4", "--vcd", "/no/such/folder"], "does not exist"),
    (["simulate", "/no/such/bundle.sfb"], "bundle.sfb"),
])
def test_simulate_bad_input_exits_2(argv, fragment, capsys):
    status, out, err = _run(argv, capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("spikeforge: error: ") and fragment in err


def test_simulate_network_that_does_not_fit_exits_2(capsys, monkeypatch):
    from spikeforge.rtl.config import AcceleratorConfig
    from spikeforge.tools import simulate as simulate_module
    from spikeforge.rtl.sizing import Design, MemorySizes
    monkeypatch.setattr(simulate_module, "design_for", lambda network, pes, **_: (
        Design(AcceleratorConfig(pes=pes, max_out_channels=4), MemorySizes())))
    status, _, err = _run(["simulate", "--pes", "4"], capsys)
    assert status == 2 and "does not fit the accelerator" in err and "conv1" in err
