# amaranth: UnusedElaboratable=no
"""The generated Verilog under cocotb: a Verilator run checked against the golden model
(outputs, counters, spike counts read back through the host port), the build cache, Icarus
(and its clear failure when it is not installed), and the batched scoreboard on its own."""

import shutil

import numpy as np
import pytest

from spikeforge.golden import network_from_parts
from spikeforge.golden import run as golden_run
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.cycle_model import predict_from_golden
from spikeforge.rtl.program import build_program
from spikeforge.rtl.sizing import MemorySizes
from spikeforge.sim.cosim import (SimulatorUnavailable, build_design, build_recipe,
                                  check_simulator, run_images)
from spikeforge.sim.random_networks import random_network
from spikeforge.sim.regress import suite
from spikeforge.sim.scoreboard import TraceChecker, record_layout, unpack_bits


@pytest.fixture(scope="module")
def case():
    """A quick-suite random conv network on its 4-PE design (shared with the quick suite)."""
    cases, _ = suite("quick")
    case = cases[1]
    network = case.network()
    return case, network, case.inputs(network)


def _check_against_golden(case, network, images, summary):
    golden = golden_run(network, images, trace=True)
    program = build_program(network, case.config, case.sizes)
    for index, row in enumerate(summary["images"]):
        assert row["mismatch"] is None and not row["timeout"]
        assert row["cycles"] == row["done_cycle"] == predict_from_golden(program, golden, index)
        assert row["output_membrane"] == golden.output_membrane[index].tolist()
        assert row["prediction"] == int(golden.predictions[index])
        assert row["spike_counts"] == {
            plan.name: int(golden.spikes[plan.name][:, index].sum())
            for plan in program.layers if not (plan.output or plan.pool)}
        assert 0 < row["counters"]["pe_busy_cycles"] < row["cycles"]


def test_verilator_run(case):
    case_, network, images = case
    build = build_design("verilator", case_.config, case_.sizes)
    summary = run_images(build, network, images, config=case_.config, sizes=case_.sizes)
    assert len(summary["images"]) == len(images)
    _check_against_golden(case_, network, images, summary)


def test_verilator_build_cached(case):
    case_, _, _ = case
    first = build_design("verilator", case_.config, case_.sizes)
    executable = first.directory / "spikeforge_top"
    stamp = executable.stat().st_mtime_ns
    again = build_design("verilator", case_.config, case_.sizes)
    assert again.reused and again.directory == first.directory
    assert executable.stat().st_mtime_ns == stamp  # nothing was rebuilt


def test_verilator_build_of_another_environment_is_not_found(case, monkeypatch, tmp_path):
    # The executable runs cocotb's VPI library from the folder it was linked against, so a
    # build made from another venv (a deleted checkout's) must not be found in the cache.
    from cocotb_tools import config

    case_, _, _ = case
    build_design("verilator", case_.config, case_.sizes)  # in the cache now
    assert build_recipe("verilator", False)["cocotb_libs"] == str(config.libs_dir)
    monkeypatch.setattr(config, "libs_dir", tmp_path / "other-venv" / "cocotb" / "libs")
    assert build_recipe("verilator", False)["cocotb_libs"] == str(config.libs_dir)
    monkeypatch.setattr("spikeforge.sim.cosim._build_into", _refuse_to_build)
    with pytest.raises(AssertionError, match="^a build was started$"):
        build_design("verilator", case_.config, case_.sizes)


def _refuse_to_build(*args):
    raise AssertionError("a build was started")


@pytest.mark.skipif(shutil.which("iverilog") is None,
                    reason="Icarus is optional (apt-get install iverilog); its absence is "
                           "tested by test_icarus_missing")
def test_icarus_run(case):
    case_, network, images = case
    build = build_design("icarus", case_.config, case_.sizes)
    summary = run_images(build, network, images[:1], config=case_.config, sizes=case_.sizes)
    _check_against_golden(case_, network, images[:1], summary)


def test_icarus_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SimulatorUnavailable, match=r"^the icarus simulator needs iverilog and "
                                                   r"vvp on PATH, which are not installed"):
        check_simulator("icarus")


def test_unknown_simulator():
    with pytest.raises(ValueError, match=r"^Simulator must be one of verilator, icarus, not "
                                         r"'xsim'$"):
        check_simulator("xsim")


# ---------------------------------------------------------------- the scoreboard alone

CONFIG = AcceleratorConfig(pes=4, membrane_bits=32, psum_bits=48, leak_multiplier=True,
                           max_positions=64, weight_depth=512, spike_memory_bits=8192,
                           max_in_channels=64, max_out_channels=64, max_feature_size=16)
SIZES = MemorySizes(bias_depth=64, max_layers=16, pixel_depth=4096, pixel_bits=16)


@pytest.fixture(scope="module")
def records():
    """Golden-made trace records of one image: what a correct design would write."""
    network = network_from_parts(*random_network(7, "conv2d"))
    images = np.random.default_rng(7).integers(0, 1 << network.input.bits,
                                               size=(1, *network.input.shape))
    golden = golden_run(network, images, trace=True)
    program = build_program(network, CONFIG, SIZES)
    layout = record_layout(CONFIG, SIZES)
    rows = []
    for desc, plan in enumerate(program.layers):
        if plan.pool:
            continue
        trace = golden.traces[plan.name]
        shape = (trace.membrane.shape[0], plan.channels, plan.positions)
        membrane = trace.membrane[:, 0].reshape(shape)
        spikes = None if trace.spikes is None else trace.spikes[:, 0].reshape(shape)
        for group in range(plan.groups):
            for step in range(1, shape[0] + 1):
                for position in range(plan.positions):
                    lanes = [int(membrane[step - 1, c, position]) if c < plan.channels else 0
                             for c in range(group * 4, group * 4 + 4)]
                    bits = sum(int(spikes[step - 1, c, position]) << (c - group * 4)
                               for c in range(group * 4, min(group * 4 + 4, plan.channels))
                               ) if spikes is not None else 0
                    rows.append({"layer": desc, "group": group, "step": step,
                                 "position": position, "membrane": lanes, "spikes": bits})
    words = [layout.const(row).as_bits() for row in rows]
    return TraceChecker(program, SIZES, golden), program, rows, words, layout


def test_scoreboard_clean(records):
    checker, _, _, words, _ = records
    assert checker.check_records(0, 5, list(range(10, 10 + len(words))), words) is None


def test_scoreboard_first_membrane_then_spike(records):
    checker, program, rows, words, layout = records
    words = list(words)

    def lane1_live(row):
        return row["group"] * 4 + 1 < program.layers[row["layer"]].channels

    picks = [i for i in range(len(rows) - 1) if lane1_live(rows[i]) and lane1_live(rows[i + 1])]
    pick = picks[len(picks) // 2]
    row = dict(rows[pick])
    row["membrane"] = [row["membrane"][0], row["membrane"][1] + 7, *row["membrane"][2:]]
    row["spikes"] ^= 0b1  # the same record's spike lane 0 is wrong too: membrane comes first
    words[pick] = layout.const(row).as_bits()
    later = dict(rows[pick + 1])
    later["spikes"] ^= 0b10
    words[pick + 1] = layout.const(later).as_bits()
    plan = program.layers[row["layer"]]
    mismatch = checker.check_records(0, 3, list(range(len(words))), words)
    y, x = divmod(row["position"], plan.width)
    assert (mismatch.image, mismatch.cycle, mismatch.layer, mismatch.what, mismatch.timestep,
            mismatch.neuron, mismatch.got - mismatch.expected) == (
        3, pick, plan.name, "membrane", row["step"], (row["group"] * 4 + 1, y, x), 7)
    words[pick] = layout.const(rows[pick]).as_bits()
    mismatch = checker.check_records(0, 3, list(range(len(words))), words)
    assert (mismatch.cycle, mismatch.what, mismatch.neuron[0]) == (
        pick + 1, "spike", rows[pick + 1]["group"] * 4 + 1)


def test_scoreboard_unexpected_row(records):
    checker, program, rows, words, layout = records
    row = dict(rows[0], step=0)  # no timestep 0 exists
    mismatch = checker.check_records(0, 0, [42], [layout.const(row).as_bits()])
    assert (mismatch.cycle, mismatch.what) == (42, "membrane write (no such row)")


def test_unpack_bits_of_a_64_lane_spike_word():
    # Lane 63 firing sets bit 63: the word no longer fits an int64 (it did overflow once).
    offset, lanes = 5, 64
    fired = [(0,), (63,), (0, 31, 32, 63), tuple(range(64)), ()]
    words = [sum(1 << (offset + lane) for lane in lanes_on) | 0b10101 for lanes_on in fired]
    bits = unpack_bits(words, offset, lanes)
    expected = np.zeros((len(fired), lanes), dtype=np.int64)
    for row, lanes_on in enumerate(fired):
        expected[row, list(lanes_on)] = 1
    np.testing.assert_array_equal(bits, expected)
