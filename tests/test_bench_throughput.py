"""``spikeforge bench throughput``: the rows' numbers follow from the golden counts and the
cycle model, for the board design, with the op conventions and SIA's figure (no timing)."""

import json

import numpy as np
import pytest

from spikeforge.golden import quantize_input, read_bundle, run
from spikeforge.golden.energy import cnn_ops
from spikeforge.rtl.cycle_model import counters_from_golden
from spikeforge.rtl.program import build_program
from spikeforge.rtl.sizing import BOARD_DESIGNS
import spikeforge.tools.bench_throughput as bench_throughput_module
from spikeforge.tools.bench_throughput import bench_throughput, throughput_lines
from spikeforge.tools.cli import main
from spikeforge.data.evaluate import default_bundle_path, load_test_set


@pytest.fixture(scope="module")
def digits():
    path = default_bundle_path()
    network = read_bundle(path)
    test = load_test_set("digits", network, None)
    return network, path, "digits", test.x[:3], test.y[:3]


def test_rows_follow_from_the_golden_counts_and_the_cycle_model(digits):
    network, _, _, raw, _ = digits
    result = bench_throughput([digits], images=3, rtl_images=0, sta=False)
    row, = result["rows"]
    assert (row["bundle"], row["config"], row["images"]) == ("digits_snn", "pynq-z2", 3)
    assert row["rtl_equals_model"] is None and row["rtl_images"] == 0
    # Recomputed here from the parts: the golden run's operation counts, the cycle model.
    golden = run(network, quantize_input(raw, network.input), trace=True)
    design = BOARD_DESIGNS["pynq-z2"]
    program = build_program(network, design.config, design.sizes)
    cycles = np.mean([counters_from_golden(program, golden, i)["cycles"] for i in range(3)])
    ops = (sum(int(v.sum()) for v in golden.synaptic_ops.values())
           + int(golden.first_layer_macs.sum())) / 3
    assert row["cycles_per_image"] == pytest.approx(cycles)
    assert row["useful_ops_per_image"] == pytest.approx(ops)
    assert row["gsops"] == pytest.approx(ops * 125e6 / cycles / 1e9)
    assert row["gsops_at"]["100"] == pytest.approx(ops * 100e6 / cycles / 1e9)
    assert row["images_per_second"] == pytest.approx(125e6 / cycles)
    dense = 2 * sum(layer["macs"] for layer in cnn_ops(network).values())
    assert row["dense_equivalent_gops"] == pytest.approx(dense * 125e6 / cycles / 1e9)
    assert row["lane_utilisation"] == pytest.approx(ops / cycles / 64)
    assert result["sia"]["gops"] == 38.4
    lines = throughput_lines(result)
    assert lines[1].startswith("digits_snn") and "38.4 GOPS" in lines[2]
    json.dumps(result)


def test_cli_refuses_more_rtl_images_than_images(capsys):
    assert main(["bench", "throughput", "--images", "2", "--rtl-images", "3"]) == 2
    assert capsys.readouterr().err == (
        "spikeforge: error: --rtl-images 3 is more than --images 2\n")


def test_cli_json(capsys, monkeypatch):
    # The synthesis-cache lookup elaborates the whole PS top (a minute); not what this tests.
    monkeypatch.setattr(bench_throughput_module, "_sta_clock", lambda design: None)
    assert main(["bench", "throughput", "--bundle", str(default_bundle_path()), "--images", "2",
                 "--rtl-images", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [row["bundle"] for row in result["rows"]] == ["digits_snn"]
    assert set(result["conventions"]) == {"gsops", "dense_equivalent_gops"}
    assert result["rows"][0]["sta_clock_hz"] is None
