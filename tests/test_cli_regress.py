# amaranth: UnusedElaboratable=no
"""``spikeforge regress --bundle B [--inputs FILE] [--pes ...]``: the user's bundle joins the
regression matrix (JUnit case names include it), on their own samples, and every bad option
is refused before any work."""

import json
from xml.etree import ElementTree

import numpy as np
import pytest

from spikeforge.golden import quantize_input, read_bundle
from spikeforge.sim.regress import bundle_cases, suite
from spikeforge.tools import regress as tools_regress
from spikeforge.tools.cli import main
from spikeforge.data.datasets import digits_split
from test_bad_inputs import refused
from test_cli import make_digits_bundle


@pytest.fixture
def mine(tmp_path, monkeypatch):
    """A small digits bundle ``tiny.sfb`` and 5 raw digits images ``d.npz`` in the current
    folder."""
    monkeypatch.chdir(tmp_path)
    make_digits_bundle(tmp_path / "tiny.sfb", split={"test_fraction": 0.25, "seed": 0})
    split = digits_split(test_fraction=0.25, seed=0)
    np.savez(tmp_path / "d.npz", x=split.x_test[:5], y=split.y_test[:5])
    return tmp_path


def test_bundle_on_its_own_samples_in_verilog(capsys, mine):
    status = main(["regress", "--suite", "none", "--bundle", "tiny.sfb", "--pes", "4",
                   "--inputs", "d.npz", "--junit", "r.xml", "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    case, = json.loads(out)["cases"]
    assert (case["name"], case["simulator"], case["images"], case["mismatches"]) == (
        "tiny-pes4", "verilator", 5, 0)
    assert case["cycles"] == case["predicted_cycles"] > 0
    names = [c.get("name") for c in ElementTree.parse(mine / "r.xml").getroot().iter("testcase")]
    assert names == ["tiny-pes4"]


def test_bundle_cases_join_the_suite(mine, monkeypatch):
    seen = []

    def fake_run_suite(cases, simulator, **options):
        seen.extend(case.name for case in cases)
        return []

    monkeypatch.setattr(tools_regress, "run_suite", fake_run_suite)
    network = read_bundle("tiny.sfb")
    samples = quantize_input(np.load("d.npz")["x"], network.input)
    extra = bundle_cases(mine / "tiny.sfb", pes_counts=(4, 8), samples=samples)
    assert [case.images for case in extra] == [5, 5]
    assert np.array_equal(extra[0].inputs(network), samples)
    tools_regress.regress("quick", "amaranth", extra=extra)
    assert seen == [case.name for case in suite("quick")[0]] + ["tiny-pes4", "tiny-pes8"]


def test_bundle_without_inputs_runs_seeded_random_images(mine):
    first, = bundle_cases(mine / "tiny.sfb", pes_counts=(8,))
    network = first.network()
    assert first.images == 2 and first.name == "tiny-pes8"
    assert np.array_equal(first.inputs(network), first.inputs(network))
    assert first.inputs(network).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("argv, message", [
    (["--suite", "none"], "--suite none runs only the --bundle cases; pass --bundle"),
    (["--inputs", "d.npz"], "--inputs applies to the --bundle cases; pass --bundle"),
    (["--pes", "8"], "--pes applies to the --bundle cases; pass --bundle"),
    (["--bundle", "none.sfb"], "the bundle none.sfb does not exist or is not a file"),
    (["--bundle", "tiny.sfb", "--pes", "4,100000"],
     "--pes 100000 makes no valid design: Number of PEs must be an integer in 1..1024, not "
     "100000"),
    (["--bundle", "tiny.sfb", "--pes", "4,x"], "argument --pes: 'x' is not a whole number"),
    (["--bundle", "tiny.sfb", "--inputs", "flat.npy"],
     "the inputs flat.npy have shape (5, 64); the bundle 'tiny_digits' expects (N, 1, 8, 8)"),
])
def test_regress_bundle_bad_options(capsys, mine, argv, message):
    np.save(mine / "flat.npy", np.zeros((5, 64)))
    refused(capsys, mine, ["regress", "--junit", "r.xml", *argv], message)
