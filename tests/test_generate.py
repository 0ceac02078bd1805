# amaranth: UnusedElaboratable=no
"""``spikeforge generate``: Verilog, manifest and memory images; byte-identical output for the
same inputs (also under another hash seed); the images hold the program's rows; bad sources
end with one line."""

import json
import os
import re
import subprocess
import sys

import pytest

from spikeforge.golden import read_bundle
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.program import build_program
from spikeforge.rtl.sizing import MemorySizes
from spikeforge.tools.cli import main
from spikeforge.data.evaluate import default_bundle_path

SMALL = AcceleratorConfig(pes=4, max_positions=64, weight_depth=256, spike_memory_bits=2048,
                          max_in_channels=32, max_out_channels=32, max_feature_size=16)


def _files(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "small.json"
    path.write_text(json.dumps(SMALL.to_json()))
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The shipped digits bundle generated for 4 PEs."""
    out = tmp_path_factory.mktemp("digits")
    assert main(["generate", str(default_bundle_path()), "--pes", "4", "--out", str(out)]) == 0
    return out


def test_generate_config_is_deterministic(config_file, tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["generate", str(config_file), "--out", str(first), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(summary["files"]) == ["manifest.json", "spikeforge_top.v"]
    # Another process with another hash seed: no set or dict order may leak into the files.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-m", "spikeforge.tools.cli", "generate", str(config_file),
                    "--out", str(second)], check=True, env=env, capture_output=True)
    assert _files(first) == _files(second)
    assert str(tmp_path) not in _files(first)["manifest.json"].decode()


def test_generate_bundle_files(generated):
    names = sorted(path.name for path in generated.iterdir())
    assert names == ["biases.hex", "descriptors.hex", "manifest.json", "spikeforge_top.v",
                     "weights.hex"]
    manifest = json.loads((generated / "manifest.json").read_text())
    config = AcceleratorConfig.from_json(manifest["config"])
    assert config.pes == 4
    network = read_bundle(default_bundle_path())
    program = build_program(network, config, MemorySizes.from_json(manifest["sizes"]))
    # weights.hex: one row per line, lane i in bits [8i, 8i + 8), two's complement.
    lines = (generated / "weights.hex").read_text().splitlines()
    assert len(lines) == len(program.weights) == manifest["program"]["files"]["weights.hex"][
        "words"]
    for line, row in zip(lines, program.weights):
        word = int(line, 16)
        lanes = [(word >> (8 * i)) & 0xFF for i in range(4)]
        assert [v - 256 if v > 127 else v for v in lanes] == row
    assert all(len(line) == 8 for line in lines)  # 32-bit words: 8 hex digits
    biases = (generated / "biases.hex").read_text().splitlines()
    width = config.psum_bits
    for line, row in zip(biases, program.biases):
        word = int(line, 16)
        lanes = [(word >> (width * i)) & ((1 << width) - 1) for i in range(4)]
        assert [v - (1 << width) if v >> (width - 1) else v for v in lanes] == row
    descriptors = (generated / "descriptors.hex").read_text().splitlines()
    assert len(descriptors) == len(program.descriptors)


def test_generate_ports_match_manifest(generated):
    manifest = json.loads((generated / "manifest.json").read_text())
    text = (generated / "spikeforge_top.v").read_text()
    header = re.search(r"^module spikeforge_top\(([^)]*)\);", text, re.MULTILINE).group(1)
    assert {name.strip() for name in header.split(",")} == set(manifest["ports"])
    for name, (direction, width) in manifest["ports"].items():
        declared = re.search(rf"^  {direction} (\[(\d+):0\] )?{name};$", text, re.MULTILINE)
        assert declared is not None, name
        assert (int(declared.group(2)) + 1 if declared.group(2) else 1) == width
    config = AcceleratorConfig.from_json(manifest["config"])
    memories = manifest["host_memories"]
    assert memories["weights"]["width"] == 4 * config.weight_bits
    assert memories["membranes"]["width"] == 4 * config.membrane_bits
    assert manifest["ports"]["host__w_data"][1] == max(
        memories[name]["width"] for name in ("weights", "biases", "descriptors", "pixels"))
    assert manifest["ports"]["host__r_data"][1] == max(
        memories[name]["width"] for name in ("membranes", "spike_counts"))
    assert [memories[name]["select"] for name in memories] == list(range(6))


def test_generate_from_manifest(generated, tmp_path):
    assert main(["generate", str(generated / "manifest.json"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "spikeforge_top.v").read_bytes() == (
        generated / "spikeforge_top.v").read_bytes()


@pytest.mark.parametrize("setup, message", [
    ("garbage", r"^spikeforge: error: .*"),
    ("pes-with-config", r"^spikeforge: error: --pes applies to a bundle; the config .* fixes "
                        r"the PE count$"),
    ("bad-config", r"^spikeforge: error: .* is not an accelerator config: "),
    ("out-is-file", r"^spikeforge: error: the output .* exists and is not a folder$"),
    ("missing", r"^spikeforge: error: the source .* does not exist$"),
])
def test_generate_errors(setup, message, config_file, tmp_path, capsys):
    source, out, extra = config_file, tmp_path / "out", []
    if setup == "garbage":
        source = tmp_path / "x.sfb"
        source.write_bytes(b"not a bundle")
    elif setup == "pes-with-config":
        extra = ["--pes", "8"]
    elif setup == "bad-config":
        source = tmp_path / "c.json"
        source.write_text(json.dumps({**SMALL.to_json(), "pes": 0}))
    elif setup == "out-is-file":
        out.write_text("")
    elif setup == "missing":
        source = tmp_path / "none.sfb"
    assert main(["generate", str(source), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.match(message, err)
