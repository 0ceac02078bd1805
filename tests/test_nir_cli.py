"""``spikeforge nir import`` / ``spikeforge nir export``: help, JSON, refusals (exit 2, one
line, nothing written)."""

import json

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from spikeforge.golden import network_to_parts, read_bundle  # noqa: E402
from spikeforge.tools.cli import main  # noqa: E402
from spikeforge.data.evaluate import default_bundle_path  # noqa: E402


def call(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_refused(status, out, err, message):
    assert (status, out) == (2, "")
    assert err == f"spikeforge: error: {message}\n"


@pytest.mark.parametrize("command", ["import", "export"])
def test_help(capsys, command):
    with pytest.raises(SystemExit) as info:
        main(["nir", command, "--help"])
    assert info.value.code == 0
    assert "--json" in capsys.readouterr().out


def test_export_then_import_gives_the_shipped_bundle(capsys, tmp_path):
    graph, bundle = tmp_path / "digits.nir", tmp_path / "digits.sfb"
    status, out, err = call(capsys, "nir", "export", "--out", graph, "--json")
    assert status == 0 and err == ""
    report = json.loads(out)
    assert report["graph"] == str(graph) and report["exact"] is False
    verdicts = {entry["node"]: entry["exact"] for entry in report["nodes"]}
    assert verdicts["conv1"] is True and verdicts["conv1.neuron"] is False
    status, out, err = call(capsys, "nir", "import", graph, "--out", bundle, "--json")
    assert status == 0 and err == ""
    summary = json.loads(out)
    assert summary["source"] == "spikeforge" and summary["notes"] == []
    original, again = read_bundle(default_bundle_path()), read_bundle(bundle)
    assert network_to_parts(original)[0] == network_to_parts(again)[0]
    assert summary["content_hash"] == again.content_hash


def test_export_text_names_every_node(capsys, tmp_path):
    status, out, _ = call(capsys, "nir", "export", "--out", tmp_path / "g.nir")
    assert status == 0
    assert "conv1.neuron" in out and "subtract reset has no NIR form" in out


def test_strict_export_refused(capsys, tmp_path):
    graph = tmp_path / "digits.nir"
    assert_refused(*call(capsys, "nir", "export", "--out", graph, "--strict"),
                   "conv1.neuron: subtract reset has no NIR form; other NIR consumers will reset "
                   "to zero")
    assert list(tmp_path.iterdir()) == []


def test_export_into_missing_folder_refused(capsys, tmp_path):
    assert_refused(*call(capsys, "nir", "export", "--out", tmp_path / "no" / "g.nir"),
                   f"the folder {tmp_path / 'no'} for the graph does not exist")


def test_import_of_missing_graph_refused(capsys, tmp_path):
    assert_refused(*call(capsys, "nir", "import", tmp_path / "none.nir", "--out",
                         tmp_path / "b.sfb"),
                   f"the NIR graph {tmp_path / 'none.nir'} does not exist or is not a file")


def test_import_of_a_non_nir_file_refused(capsys, tmp_path):
    path = tmp_path / "junk.nir"
    path.write_bytes(b"not hdf5")
    status, out, err = call(capsys, "nir", "import", path, "--out", tmp_path / "b.sfb")
    assert (status, out) == (2, "")
    assert err.startswith(f"spikeforge: error: {path} cannot be read as a NIR graph (")
    assert err.count("\n") == 1 and not (tmp_path / "b.sfb").exists()


def test_import_raw_range_order_refused(capsys, tmp_path):
    assert_refused(*call(capsys, "nir", "import", tmp_path / "g.nir", "--out", tmp_path / "b.sfb",
                         "--raw-range", "1", "0"),
                   "--raw-range 1 0 must have MAX greater than MIN")


def test_import_too_many_timesteps_refused(capsys, tmp_path):
    assert_refused(*call(capsys, "nir", "import", tmp_path / "g.nir", "--out", tmp_path / "b.sfb",
                         "--timesteps", "1025"),
                   "--timesteps 1025 is more than a bundle holds (1024)")


def test_import_options_on_a_spikeforge_graph_refused(capsys, tmp_path):
    graph = tmp_path / "digits.nir"
    assert call(capsys, "nir", "export", "--out", graph)[0] == 0
    assert_refused(*call(capsys, "nir", "import", graph, "--out", tmp_path / "b.sfb",
                         "--timesteps", "4"),
                   "the graph was written by spikeforge, whose metadata fixes timesteps; leave "
                   "the option out")
    assert not (tmp_path / "b.sfb").exists()


def test_import_of_a_foreign_graph_with_options(capsys, tmp_path):
    ones = np.ones(3, np.float32)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([4])}),
        "fc1": nir.Affine(weight=np.ones((3, 4), np.float32), bias=np.zeros(3, np.float32)),
        "if1": nir.IF(r=ones, v_threshold=ones * 2.5),
        "fc2": nir.Linear(weight=np.eye(2, 3, dtype=np.float32)),
        "v": nir.I(r=np.ones(2, np.float32)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    names = list(nodes)
    path = tmp_path / "tiny.nir"
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:]))))
    bundle = tmp_path / "tiny.sfb"
    status, out, err = call(capsys, "nir", "import", path, "--out", bundle, "--timesteps", "5",
                            "--input-bits", "4", "--raw-range", "0", "255", "--json")
    assert status == 0 and err == ""
    network = read_bundle(bundle)
    assert network.timesteps == 5 and network.input.bits == 4 and network.input.raw_max == 255
    assert network.layers[0].neuron.threshold == 3
    assert json.loads(out)["source"] == "nir"
