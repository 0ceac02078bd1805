# amaranth: UnusedElaboratable=no
"""The regression suite: the quick suite through the CLI on a two-worker Dask LocalCluster
(JSON, JUnit XML, progress, exit status), the declared matrices, and the deliberately broken
design (one flipped membrane bit) failing with the right cycle and neuron, in the Verilog
regression and in the Amaranth harness alike."""

import json
from dataclasses import replace
from xml.etree import ElementTree

import dask
import numpy as np
import pytest

from spikeforge.golden.network import OUTPUT_MEMBRANE_BITS
from spikeforge.rtl.host_port import MembraneFault
from spikeforge.rtl.sizing import BOARD_DESIGNS, Design
from spikeforge.sim import regress as regress_module
from spikeforge.sim.harness import Harness, Mismatch
from spikeforge.sim.random_networks import random_network
from spikeforge.sim.regress import NARROW_MEMBRANE_BITS, run_case, shipped_bundles, suite
from spikeforge.tools import regress as tools_regress
from spikeforge.tools.cli import main
from spikeforge.tools.regress import regress_lines, write_junit

JSON_KEYS = {"name", "simulator", "images", "mismatches", "cycles", "predicted_cycles",
             "cycles_per_second"}


@pytest.fixture(scope="module")
def quick():
    return suite("quick")


def test_quick_matrix(quick):
    cases, skipped = quick
    assert skipped == []
    assert [case.name for case in cases][0] == "digits_snn-pes8-w16"
    assert sum(1 for case in cases if case.bundle is None) == 4
    assert len({case.design for case in cases}) == 3  # three builds for the whole suite
    assert {case.config.pes for case in cases} == {8, 4, 64}
    # Shipped networks (a hyperspectral one and an MNIST CNN) on the board design every other
    # command builds for them.
    board = [case for case in cases if case.name.endswith("-pynq-z2")]
    assert [case.name for case in board] == ["indian_pines_hybrid-pynq-z2", "mnist_vgg-pynq-z2"]
    assert {Design(case.config, case.sizes) for case in board} == {BOARD_DESIGNS["pynq-z2"]}


@pytest.fixture(scope="module")
def full():
    return suite("full")


def test_full_matrix(full):
    cases, skipped = full
    names = {case.name for case in cases} | {name for name, _ in skipped}
    for path in shipped_bundles():  # every shipped bundle is run or said to be left out
        for pes in (8, 16, 64):
            for width in ("w16", "w32"):
                assert f"{path.stem}-pes{pes}-{width}" in names
    assert all("does not fit" in reason or "cannot run" in reason for _, reason in skipped)
    assert {case.config.membrane_bits for case in cases if case.name.endswith("w32")} == {32}
    assert sum(1 for case in cases if case.bundle is None and case.membrane_bits is None) == 12


@pytest.mark.parametrize("bits", NARROW_MEMBRANE_BITS)
def test_narrow_membrane_cases(full, bits):
    # Networks with `bits`-bit membranes on a design whose membrane memory is `bits` wide:
    # bit-exact on the Amaranth harness, saturating at both ends of the range (so the
    # narrow rows hold the extreme values), and a flipped top bit of one write is caught.
    cases = [case for case in full[0] if case.membrane_bits == bits]
    assert [case.template for case in cases] == ["conv2d", "linear", "residual", "conv3d",
                                                 "pooled"]
    # Every other network's output layer sums its steps at OUTPUT_MEMBRANE_BITS, in the
    # design's own output membrane memory of that width (the rest use it at their width).
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    reached, output_widths = set(), []
    for case in cases:
        network = case.network()
        assert network.membrane_bits == case.config.membrane_bits == bits
        assert case.config.output_membrane_bits == OUTPUT_MEMBRANE_BITS
        assert case.name.endswith(f"-pes4-m{bits}")
        output_widths.append(network.layer_membrane_bits(network.output_layer))
        result = run_case(case, "amaranth")
        assert result.passed, result.failures
        golden = Harness(network, case.config, sizes=case.sizes).expected(
            case.inputs(network))
        for name, trace in golden.traces.items():
            if trace.membrane is not None:
                top = (1 << (network.layer_membrane_bits(network.layer(name)) - 1)) - 1
                values = np.asarray(trace.membrane)
                assert -top - 1 <= values.min() and values.max() <= top
                if top == high:
                    reached |= {value for value in (low, high) if np.any(values == value)}
    assert reached == {low, high}
    assert output_widths == [bits, OUTPUT_MEMBRANE_BITS] * 2 + [bits]

    case = cases[0]
    network = case.network()
    harness = Harness(network, case.config, sizes=case.sizes)
    images = case.inputs(network)[:1]
    writes = harness.run(images, record_writes=True)[0].membrane_writes
    _, _, step, group, position = writes[len(writes) // 2]
    index = [plan.name for plan in harness.program.layers].index(writes[len(writes) // 2][1])
    fault = MembraneFault(layer=index, timestep=step, channel=group * case.config.pes,
                          position=position, bit=bits - 1)
    with pytest.raises(Mismatch):
        Harness(network, case.config, sizes=case.sizes, fault=fault).run(images)


def test_random_network_membrane_width_refused():
    for bad in (1, 33, 4.0, "4", True):
        with pytest.raises(TypeError) as info:
            random_network(0, "conv2d", membrane_bits=bad)
        assert str(info.value) == f"Membrane width must be an integer in 2..32, not {bad!r}"
    manifest, _ = random_network(0, "conv2d", membrane_bits=2)
    assert manifest["membrane_bits"] == 2


def test_suite_unknown():
    with pytest.raises(ValueError, match=r"^Suite must be one of quick, full, not 'nightly'$"):
        suite("nightly")


def test_cli_quick_suite(tmp_path, capsys):
    junit = tmp_path / "regress.xml"
    status = main(["regress", "--suite", "quick", "--simulator", "verilator", "--jobs", "2",
                   "--json", "--junit", str(junit), "--waves", str(tmp_path / "waves")])
    out, err = capsys.readouterr()
    assert status == 0, err
    report = json.loads(out)
    assert list(report) == ["cases"]
    assert len(report["cases"]) == 7
    for case in report["cases"]:
        assert set(case) == JSON_KEYS
        assert case["simulator"] == "verilator"
        assert case["mismatches"] == 0
        assert case["cycles"] == case["predicted_cycles"] > 0
        assert case["cycles_per_second"] > 0
    assert "Dask local cluster: 2 workers" in err
    assert "[7/7]" in err
    root = ElementTree.parse(junit).getroot()
    suite_element = root.find("testsuite")
    assert (suite_element.get("tests"), suite_element.get("failures")) == ("7", "0")
    assert [c.get("name") for c in suite_element.iter("testcase")] == [
        c["name"] for c in report["cases"]]
    assert not (tmp_path / "waves").exists()  # nothing failed, no waveform


def test_cli_icarus_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no iverilog here
    status = main(["regress", "--simulator", "icarus", "--junit", str(tmp_path / "r.xml")])
    _, err = capsys.readouterr()
    assert status == 2
    assert err == ("spikeforge: error: the icarus simulator needs iverilog and vvp on PATH, "
                   "which are not installed (apt-get install iverilog)\n")


def test_cli_scheduler_unreachable(tmp_path, capsys):
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        status = main(["regress", "--scheduler", "tcp://127.0.0.1:9", "--junit",
                       str(tmp_path / "r.xml")])
    _, err = capsys.readouterr()
    assert status == 2
    last = err.splitlines()[-1]
    assert last.startswith("spikeforge: error: could not reach the Dask scheduler at "
                           "tcp://127.0.0.1:9 (")


@pytest.fixture(scope="module")
def broken(quick):
    """A random-network case with a fault on a write in the middle of image 0, and what the
    report must say: the write's cycle (from the Amaranth harness) and the golden value."""
    case = quick[0][1]
    network = case.network()
    images = case.inputs(network)
    harness = Harness(network, case.config, sizes=case.sizes)
    golden = harness.expected(images)
    writes = harness.run(images[:1], golden=golden, record_writes=True)[0].membrane_writes
    cycle, layer, step, group, position = writes[len(writes) // 2]
    index = [plan.name for plan in harness.program.layers].index(layer)
    plan = harness.program.layers[index]
    channel, bit = group * case.config.pes, 3
    fault = MembraneFault(layer=index, timestep=step, channel=channel, position=position,
                          bit=bit)
    y, x = divmod(position, plan.width)
    trace = golden.traces[layer].membrane
    good = int(trace[(step - 1, 0, channel, y, x)[:trace.ndim]])
    report = (f"image 0, cycle {cycle}: layer {layer!r}, timestep {step}, neuron (channel, y, "
              f"x) = ({channel}, {y}, {x}): membrane expected {good}, got {good ^ (1 << bit)}")
    return replace(case, name="broken", fault=fault), report


def test_broken_design_amaranth(broken):
    case, report = broken
    network = case.network()
    harness = Harness(network, case.config, sizes=case.sizes, fault=case.fault)
    with pytest.raises(Mismatch) as info:
        harness.run(case.inputs(network)[:1])
    assert str(info.value) == report


def test_broken_design_verilator(broken, tmp_path):
    case, report = broken
    result = run_case(case, "verilator", waves_dir=tmp_path)
    waves = tmp_path / "broken" / "image0.vcd"
    assert result.failures[0] == f"{report} (waveform: {waves})"
    assert waves.read_bytes().count(b"trace__valid") >= 1
    assert (result.mismatches, result.passed) == (case.images, False)
    assert result.cycles == result.predicted_cycles  # the fault changes values, not timing
    write_junit(tmp_path / "r.xml", {"suite": "quick", "results": [result], "seconds": 1.0})
    failure = ElementTree.parse(tmp_path / "r.xml").getroot().find("testsuite/testcase/failure")
    assert failure.get("message") == result.failures[0]
    lines = regress_lines({"suite": "quick", "simulator": "verilator", "results": [result],
                           "seconds": 1.0})
    assert lines[1].endswith("FAIL") and lines[2] == f"broken: {result.failures[0]}"


def test_cli_exit_status_on_failure(broken, tmp_path, monkeypatch, capsys):
    case, _ = broken
    monkeypatch.setattr(tools_regress, "suite", lambda name: ([case], []))
    status = main(["regress", "--jobs", "1", "--json", "--junit", str(tmp_path / "r.xml"),
                   "--waves", str(tmp_path / "waves")])
    out, _ = capsys.readouterr()
    assert status == 1
    assert json.loads(out)["cases"][0]["mismatches"] == case.images


def test_case_error_is_a_failure(quick, monkeypatch):
    case = quick[0][0]

    def broken_build(simulator, case, waves=False):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(regress_module, "_build", broken_build)
    result = run_case(case, "verilator")
    assert result.failures == ["RuntimeError: no compiler"]
    assert (result.mismatches, result.cycles, result.passed) == (case.images, None, False)
