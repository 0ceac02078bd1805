# amaranth: UnusedElaboratable=no
"""The table of bad inputs (issue 19): one test per row. Each CLI case checks the whole
message, exit status 2 and that no file was created or changed; the library rows check their
exception or behaviour."""

import hashlib
import json
import os
import pickle
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from random_networks import random_input, random_network
from spikeforge import __version__
from spikeforge.golden import network_from_parts, read_bundle, run, write_bundle
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.sim.harness import Harness
from spikeforge.tools.cli import main
from spikeforge.data.evaluate import default_bundle_path

SMALL = AcceleratorConfig(pes=4, max_positions=64, weight_depth=256, spike_memory_bits=2048,
                          max_in_channels=32, max_out_channels=32, max_feature_size=16)
KNOWN_FIELDS = ("format, format_version, pes, taps_per_cycle, weight_bits, membrane_bits, "
                "psum_bits, output_membrane_bits, output_membrane_rows, max_positions, "
                "max_in_channels, max_out_channels, max_feature_size, "
                "max_timesteps, weight_depth, spike_memory_bits, spike_bitmaps, leak_multiplier, "
                "current_shifter, weight_packing, space_to_depth, first_layer, pim_rows, "
                "pim_columns, clock_hz")


def _tree(folder):
    """Every file and folder under ``folder`` with its size, mtime and content hash."""
    state = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            state[os.path.join(root, name)] = "dir"
        for name in files:
            path = os.path.join(root, name)
            info = os.stat(path)
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            state[path] = (info.st_size, info.st_mtime_ns, digest)
    return state


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A working folder (also the current directory) whose files must stay untouched."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(capsys, folder, argv, message):
    """Run the CLI; assert exit 2, exactly ``spikeforge: error: message`` and no change."""
    before = _tree(folder)
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert (status, out, err) == (2, "", f"spikeforge: error: {message}\n")
    assert _tree(folder) == before


def _probe(folder):
    """The OS's reason why a new file in ``folder`` fails, or ``None`` when it succeeds."""
    try:
        with open(folder / ".probe", "x"):
            pass
    except OSError as error:
        return error.strerror
    os.unlink(folder / ".probe")
    return None


@pytest.fixture
def read_only(tmp_path):
    """``(folder, reason)``: a folder no new file can be created in (mode 0555; as root, the
    immutable attribute), and the OS's reason."""
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "kept.txt").write_text("kept")
    folder.chmod(0o555)
    immutable = False
    if _probe(folder) is None:  # root ignores the mode
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True,
                                   check=False).returncode == 0
    reason = _probe(folder)
    if reason is None:
        pytest.skip("no way to make a read-only folder here")
    yield folder, reason
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


# --------------------------------------------------------------------------- --pes

@pytest.mark.parametrize("command", ["simulate", "synth"])
def test_pes_beyond_the_design_names_the_parameter_and_the_limit(capsys, place, command):
    refused(capsys, place, [command, "--pes", 100000],
            "--pes 100000 makes no valid design: Number of PEs must be an integer in "
            "1..1024, not 100000")


# --------------------------------------------------------------------------- --membrane-bits

@pytest.mark.parametrize("command", ["simulate", "synth", "build"])
def test_membrane_width_outside_the_contract_is_refused(capsys, place, command):
    out = ["--out", place / "out"] if command == "build" else []
    refused(capsys, place, [command, "--membrane-bits", 33, *out],
            "--membrane-bits 33 makes no valid design: Membrane width must be an integer in "
            "2..32, not 33")


def test_membrane_memories_narrower_than_the_bundle_are_refused(capsys, place):
    # The shipped digits model has 16-bit membranes: 4-bit memories cannot hold them.
    refused(capsys, place, ["simulate", "--membrane-bits", 4],
            "--membrane-bits 4: network 'digits_snn' has 16-bit membranes, wider than the "
            "4-bit membrane memories asked for")
    refused(capsys, place, ["build", "--membrane-bits", 4, "--out", place / "out"],
            "the bundle 'digits_snn' does not fit the 64-PE design: the network 'digits_snn' "
            "needs 16-bit membranes, the config has 4 (12 bits over)")


# --------------------------------------------------------------------------- generate

def _huge_input_bundle(path, side=256):
    """conv 2x2 stride 2 (4 channels) -> flatten -> linear 10 on a 1 x side x side input."""
    half = side // 2
    rng = np.random.default_rng(0)
    layers = [
        {"name": "conv1", "type": "conv2d", "output": "spikes", "out_channels": 4,
         "kernel": [2, 2], "stride": [2, 2], "padding": [0, 0], "weight_bits": 4,
         "out_shape": [4, half, half], "neuron": {"threshold": 300, "reset": "zero"}},
        {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [4 * half * half]},
        {"name": "fc", "type": "linear", "output": "membrane", "out_features": 10,
         "weight_bits": 4, "out_shape": [10], "neuron": {}},
    ]
    manifest = {"format": "spikeforge-bundle", "format_version": 1, "name": "huge",
                "timesteps": 4, "membrane_bits": 16,
                "input": {"shape": [1, side, side], "bits": 8, "raw_min": 0.0,
                          "raw_max": 255.0},
                "layers": layers, "dataset": {"name": "mnist"}, "metadata": {}}
    arrays = {"conv1.weight": rng.integers(-4, 4, (4, 1, 2, 2), dtype=np.int8),
              "fc.weight": rng.integers(-4, 4, (10, 4 * half * half), dtype=np.int8)}
    return write_bundle(path, manifest, arrays)


def test_generate_refuses_a_huge_input_at_once_with_the_numbers(capsys, place):
    _huge_input_bundle(place / "huge.sfb")
    began = time.perf_counter()
    refused(capsys, place, ["generate", "huge.sfb", "--out", "out"],
            "the design for 'huge' needs 109,676,544 bits of memory (weights 33,556,480, "
            "partial sums 50,331,648, membranes 16,777,216, spike bitmaps 8,388,608, biases "
            "98,304, pixels 524,288), more than the 27,832,320 bits of the largest Zynq-7000 "
            "(xc7z100, 755 RAMB36) that generate accepts")
    assert time.perf_counter() - began < 30


def test_generate_refuses_a_folder_with_files_and_force_replaces_it(capsys, place):
    (place / "small.json").write_text(json.dumps(SMALL.to_json()))
    out = place / "out"
    (out / "old").mkdir(parents=True)
    (out / "old" / "notes.txt").write_text("mine")
    refused(capsys, place, ["generate", "small.json", "--out", "out"],
            "the output folder out exists and is not empty; pass --force to replace it as a "
            "whole")
    assert main(["generate", "small.json", "--out", "out", "--force"]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["manifest.json", "spikeforge_top.v"]
    assert sorted(path.name for path in place.iterdir()) == ["out", "small.json"]


def test_generate_never_replaces_the_current_directory(capsys, place):
    (place / "small.json").write_text(json.dumps(SMALL.to_json()))
    refused(capsys, place, ["generate", "small.json", "--out", ".", "--force"],
            "the output folder . holds the current directory; it cannot be replaced, choose a "
            "folder below it")


def test_generate_into_an_empty_folder_needs_no_force(capsys, place):
    (place / "small.json").write_text(json.dumps(SMALL.to_json()))
    (place / "out").mkdir()
    assert main(["generate", "small.json", "--out", "out"]) == 0
    assert (place / "out" / "spikeforge_top.v").is_file()


@pytest.mark.parametrize("argv, what", [
    (["generate", default_bundle_path(), "--pes", 4, "--out", "{folder}/out"],
     "the output folder"),
    (["build", "--board", "pynq-z2", "--top", "ps", "--out", "{folder}/out"],
     "the output folder"),
    (["train", "digits-conv", "--out", "{folder}/digits.sfb"], "the bundle"),
])
def test_unwritable_out_is_refused_before_any_work(capsys, place, read_only, argv, what):
    folder, reason = read_only
    argv = [str(a).format(folder=folder) for a in argv]
    target = argv[argv.index("--out") + 1]
    began = time.perf_counter()
    refused(capsys, place, argv,
            f"cannot write {what} {target}: the folder {folder} is not writable ({reason})")
    assert time.perf_counter() - began < 30


def test_an_existing_bundle_may_be_overwritten(tmp_path):
    from spikeforge.tools.options import check_writable

    (tmp_path / "old.sfb").write_bytes(b"old")
    check_writable(tmp_path / "old.sfb", "the bundle", file=True)   # no refusal
    assert (tmp_path / "old.sfb").read_bytes() == b"old"


# --------------------------------------------------------------------------- bundle files

def _torch_zip(path):
    torch = pytest.importorskip("torch")
    torch.save({"weight": torch.zeros(2)}, path)


def _pickle(path):
    path.write_bytes(pickle.dumps({"weight": [0.0, 1.0]}, protocol=2))


def _hdf5(path):
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))


@pytest.mark.parametrize("make, name, message", [
    (_hdf5, "graph.nir", "graph.nir is not a spikeforge bundle: this is a NIR graph (an HDF5 "
                         "file); use `spikeforge nir import graph.nir --out BUNDLE`"),
    (_torch_zip, "model.pt", "model.pt is not a spikeforge bundle: this is a PyTorch file; see "
                             "docs/api.md for turning a PyTorch network into a bundle"),
    (_pickle, "model.pth", "model.pth is not a spikeforge bundle: this is a PyTorch file; see "
                           "docs/api.md for turning a PyTorch network into a bundle"),
])
def test_a_known_non_bundle_file_is_named(capsys, place, make, name, message):
    make(place / name)
    refused(capsys, place, ["bundle", "info", name], message)
    refused(capsys, place, ["generate", name, "--out", "out"], message)


def test_a_zip_without_a_manifest_is_still_not_a_bundle(capsys, place):
    with zipfile.ZipFile(place / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    refused(capsys, place, ["bundle", "info", "other.zip"],
            "other.zip has no manifest.json; it is not a spikeforge bundle")


# --------------------------------------------------------------------------- config JSON

def test_truncated_config_names_the_file_the_error_and_its_line(capsys, place):
    text = json.dumps(SMALL.to_json(), indent=1)
    cut = text[:text.index('"weight_depth"')]   # ends after '",\n '
    (place / "cut.json").write_text(cut)
    message = (f"the config cut.json is not valid JSON: Expecting property name enclosed in "
               f"double quotes (line {cut.count(chr(10)) + 1}, column 2)")
    refused(capsys, place, ["generate", "cut.json", "--out", "out"], message)
    refused(capsys, place, ["synth", "--config", "cut.json"], message)


def test_unknown_config_key_names_it_and_the_known_ones(capsys, place):
    (place / "typo.json").write_text(json.dumps({**SMALL.to_json(), "lanes": 4}))
    refused(capsys, place, ["generate", "typo.json", "--out", "out"],
            f"typo.json is not an accelerator config: Accelerator config manifest has an "
            f"unknown field 'lanes'; the known fields are {KNOWN_FIELDS}")
    # A hand-written config without the header still gets the key named, not the whole dict.
    (place / "bare.json").write_text(json.dumps({"pes": 8, "bogus": 1}))
    refused(capsys, place, ["generate", "bare.json", "--out", "out"],
            f"bare.json is not an accelerator config: Accelerator config manifest has an "
            f"unknown field 'bogus'; the known fields are {KNOWN_FIELDS}")


# --------------------------------------------------------------------------- data folder

@pytest.mark.parametrize("argv", [["golden", "--dataset", "mnist"], ["simulate", "--pes", 4]])
def test_data_dir_that_is_a_file(capsys, place, argv):
    (place / "datasets").write_text("not a folder")
    refused(capsys, place, [*argv, "--data-dir", "datasets"],
            "the data folder datasets is a file, not a folder")


# --------------------------------------------------------------------------- library calls

def test_golden_run_on_an_empty_batch():
    network = read_bundle(default_bundle_path())
    with pytest.raises(ValueError, match=r"^input batch is empty \(shape \(0, 1, 8, 8\)\); "
                                         r"give the network 'digits_snn' at least one "
                                         r"sample$"):
        run(network, np.zeros((0, 1, 8, 8), dtype=np.int64))


def test_run_all_creates_a_missing_waveform_folder(tmp_path):
    manifest, arrays = random_network(7, "conv2d")
    network = network_from_parts(manifest, arrays)
    images = random_input(np.random.default_rng(7), manifest, 1)
    config = AcceleratorConfig(pes=4, membrane_bits=32, psum_bits=48, leak_multiplier=True,
                               max_positions=64, weight_depth=512, spike_memory_bits=8192,
                               max_in_channels=64, max_out_channels=64, max_feature_size=16)
    harness = Harness(network, config)
    real = harness.expected

    def wrong(batch):   # the golden side disagrees with the first membrane write
        golden = real(batch)
        golden.traces[network.layers[0].name].membrane[(0,) * 5] += 1
        return golden

    harness.expected = wrong
    folder = tmp_path / "waves" / "run1"
    result, = harness.run_all(images, vcd_dir=folder)
    assert result.mismatch is not None
    assert (folder / "image0.vcd").stat().st_size > 0


# --------------------------------------------------------------------------- --version

def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"spikeforge {__version__}\n"
    completed = subprocess.run([sys.executable, "-m", "spikeforge.tools.cli", "--version"],
                               capture_output=True, text=True, check=False, timeout=60)
    assert (completed.returncode, completed.stdout) == (0, f"spikeforge {__version__}\n")
