"""The bundle's manifest: exact round trips, byte-identical output, one clear error per problem.

Every validation failure must raise :class:`BundleError` whose message is one sentence (no
newline) naming the problem; each case below checks the message with ``pytest.raises(match=)``.
File-level damage (truncation, flipped bytes, foreign ZIPs) is in ``test_bundle_file.py``.
"""

import copy
import hashlib
import io
import json
import os
import zipfile

import numpy as np
import pytest

from bundle_cases import assert_arrays_equal as _arrays_equal, base_bundle as _base
from bundle_cases import layer_of as _layer
from random_networks import random_network
from spikeforge.golden import (
    BundleError, network_from_parts, network_to_parts, read_bundle, write_bundle,
)
from spikeforge.golden import bundle as bundle_module


# ------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("seed", [None, *range(12)])
def test_write_read_round_trip_is_exact(tmp_path, seed):
    manifest, arrays = _base() if seed is None else random_network(seed)
    path = tmp_path / "net.sfb"
    written = write_bundle(path, manifest, arrays)
    read = read_bundle(path)
    assert read.content_hash == written.content_hash and read.content_hash.startswith("sha256:")
    parts = network_to_parts(read)
    assert parts[0] == network_to_parts(written)[0]
    _arrays_equal(parts[1], arrays)
    # The parsed manifest keeps every field the writer was given (defaults made explicit).
    for given, stored in zip(manifest["layers"], parts[0]["layers"]):
        for key, value in given.items():
            if key == "neuron":  # leak and v_init may have been left to their defaults
                assert value.items() <= stored[key].items(), given["name"]
            else:
                assert stored[key] == value, (given["name"], key)
    for key in ("name", "timesteps", "membrane_bits", "input", "dataset", "metadata"):
        assert parts[0][key] == manifest[key]
    again = network_to_parts(network_from_parts(*parts))
    assert again[0] == parts[0]
    _arrays_equal(again[1], parts[1])


def test_writing_is_deterministic(tmp_path):
    manifest, arrays = _base()
    write_bundle(tmp_path / "a.sfb", manifest, arrays)
    # Same content, other key orders and a fresh copy of every array: same bytes.
    shuffled = dict(reversed(list(copy.deepcopy(manifest).items())))
    write_bundle(tmp_path / "b.sfb", shuffled,
                 {k: v.copy() for k, v in reversed(list(arrays.items()))})
    first = (tmp_path / "a.sfb").read_bytes()
    assert first == (tmp_path / "b.sfb").read_bytes()
    # A Network written twice, and a read bundle written back, give identical files too.
    network = read_bundle(tmp_path / "a.sfb")
    write_bundle(tmp_path / "c.sfb", network)
    write_bundle(tmp_path / "d.sfb", network)
    write_bundle(tmp_path / "e.sfb", read_bundle(tmp_path / "c.sfb"))
    third = (tmp_path / "c.sfb").read_bytes()
    assert third == (tmp_path / "d.sfb").read_bytes() == (tmp_path / "e.sfb").read_bytes()


def test_content_hash_follows_its_documented_definition(tmp_path):
    """Recompute the hash as docs/bundle.md defines it, from the file's own entries."""
    manifest, arrays = _base()
    write_bundle(tmp_path / "a.sfb", manifest, arrays)
    with zipfile.ZipFile(tmp_path / "a.sfb") as zf:
        assert zf.namelist()[0] == "manifest.json"
        stored = json.loads(zf.read("manifest.json"))
        names = sorted(n[len("arrays/"):-len(".npy")] for n in zf.namelist()[1:])
        loaded = {n: np.load(io.BytesIO(zf.read(f"arrays/{n}.npy"))) for n in names}
    body = {k: v for k, v in stored.items() if k != "content_hash"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for name in names:
        array = loaded[name]
        digest.update(f"\n{name}:{array.dtype.str}:{list(array.shape)}\n".encode())
        digest.update(array.astype(array.dtype.newbyteorder("<")).tobytes())
    assert stored["content_hash"] == "sha256:" + digest.hexdigest()
    _arrays_equal(loaded, arrays)


# ------------------------------------------------------------------------- manifest errors

def _set(path, value):
    """A mutation setting ``manifest[path]`` (``path[0]`` may name a layer); _DELETE deletes."""
    def mutate(manifest, arrays):
        layers = {obj["name"]: obj for obj in manifest["layers"]}
        target, keys = (layers[path[0]], path[1:]) if path[0] in layers else (manifest, path)
        for key in keys[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return mutate


_DELETE = object()


def _arrays(change):
    def mutate(manifest, arrays):
        change(arrays)
    return mutate


def _insert_layer(index, obj):
    """Insert ``obj`` before the output layer ``fc``, which keeps reading ``fl``."""
    def mutate(manifest, arrays):
        manifest["layers"].insert(index, obj)
        _layer(manifest, "fc")["inputs"] = ["fl"]
    return mutate


def _both(*mutations):
    def mutate(manifest, arrays):
        for one in mutations:
            one(manifest, arrays)
    return mutate


_EXTRA_FC = {"name": "extra", "type": "linear", "inputs": ["fl"], "output": "membrane",
             "out_features": 2, "out_shape": [2], "weight_bits": 2, "neuron": {}}

MANIFEST_ERRORS = [
    ("missing array", _arrays(lambda a: a.pop("c2.weight")),
     r"the array 'c2\.weight' needed by layer 'c2' is missing"),
    ("extra array", _arrays(lambda a: a.update(ghost=np.zeros(2, np.int8))),
     r"the array 'ghost' is not used by any layer"),
    ("bias without bias_bits", _set(["c1", "bias_bits"], _DELETE),
     r"the array 'c1\.bias' is present but layer 'c1' declares no bias_bits"),
    ("weight dtype", _arrays(lambda a: a.update({"c2.weight": a["c2.weight"].astype(np.int16)})),
     r"the array 'c2\.weight' has dtype int16, expected int8"),
    ("bias dtype", _arrays(lambda a: a.update({"c1.bias": a["c1.bias"].astype(np.int64)})),
     r"the array 'c1\.bias' has dtype int64, expected int32"),
    ("weight shape", _arrays(lambda a: a.update({"fc.weight": np.zeros((8, 3), np.int8)})),
     r"the array 'fc\.weight' has shape \(8, 3\), expected \(3, 8\)"),
    ("weight above bits", _arrays(lambda a: a["c2.weight"].__setitem__((0, 0, 0, 0), 4)),
     r"the array 'c2\.weight' holds 4, outside its declared 3-bit signed range -4\.\.3"),
    ("weight below bits", _arrays(lambda a: a["c2.weight"].__setitem__((1, 1, 2, 2), -5)),
     r"the array 'c2\.weight' holds -5, outside its declared 3-bit signed range -4\.\.3"),
    ("bias outside bits", _set(["c1", "bias_bits"], 7),
     r"the array 'c1\.bias' holds -128, outside its declared 7-bit signed range -64\.\.63"),
    ("weight_bits low", _set(["c1", "weight_bits"], 1),
     r"layer 'c1'\.weight_bits is 1, outside the allowed range 2\.\.8"),
    ("weight_bits high", _set(["fc", "weight_bits"], 9),
     r"layer 'fc'\.weight_bits is 9, outside the allowed range 2\.\.8"),
    ("bias_bits low", _set(["c1", "bias_bits"], 0),
     r"layer 'c1'\.bias_bits is 0, outside the allowed range 1\.\.32"),
    ("bias_bits high", _set(["c1", "bias_bits"], 33),
     r"layer 'c1'\.bias_bits is 33, outside the allowed range 1\.\.32"),
    ("membrane_bits low", _set(["membrane_bits"], 1),
     r"membrane_bits is 1, outside the allowed range 2\.\.32"),
    ("membrane_bits high", _set(["membrane_bits"], 33),
     r"membrane_bits is 33, outside the allowed range 2\.\.32"),
    ("input bits low", _set(["input", "bits"], 0), r"input\.bits is 0, outside .* 1\.\.16"),
    ("input bits high", _set(["input", "bits"], 17), r"input\.bits is 17, outside .* 1\.\.16"),
    ("bits not an integer", _set(["c1", "weight_bits"], True),
     r"layer 'c1'\.weight_bits must be an integer, not True"),
    ("timesteps", _set(["timesteps"], 0), r"timesteps is 0, outside the allowed range 1\.\.1024"),
    ("unknown layer type", _set(["mp", "type"], "conv1d"),
     r"layer 3 has unknown type 'conv1d'; known types are conv2d, conv3d, linear"),
    ("unknown layer field", _set(["c1", "dilation"], [1, 1]),
     r"layer 'c1' has an unknown field 'dilation'"),
    ("unknown manifest field", _set(["author"], "me"),
     r"the manifest has an unknown field 'author'"),
    ("unknown neuron field", _set(["c1", "neuron", "tau"], 2),
     r"layer 'c1'\.neuron has an unknown field 'tau'"),
    ("unknown leak field", _set(["res", "neuron", "leak", "shift"], 1),
     r"layer 'res'\.neuron\.leak has an unknown field 'shift'"),
    ("missing field", _set(["fc", "out_features"], _DELETE),
     r"layer 'fc' is missing the field 'out_features'"),
    ("newer format version", _set(["format_version"], 2),
     r"the bundle uses format version 2, newer than this spikeforge reads \(1\); upgrade"),
    ("newer version with new fields", lambda m, a: m.update(format_version=7, future=1),
     r"format version 7, newer than this spikeforge reads"),
    ("format name", _set(["format"], "onnx"), r"the manifest's format is 'onnx'"),
    ("out_shape not integers", _set(["mp", "out_shape"], [2.0, 3, True]),
     r"layer 'mp'\.out_shape is \[2\.0, 3, True\] but its inputs give \[2, 3, 3\]"),
    ("out_shape mismatch", _set(["mp", "out_shape"], [2, 2, 2]),
     r"layer 'mp'\.out_shape is \[2, 2, 2\] but its inputs give \[2, 3, 3\]"),
    ("unused layer", _insert_layer(6, {"name": "dead", "type": "maxpool2d", "inputs": ["ap"],
                                       "output": "spikes", "kernel": [2, 2],
                                       "out_shape": [2, 1, 1]}),
     r"the output of layer 'dead' is never used by a later layer"),
    ("reads a later layer", _set(["c2", "inputs"], ["res"]),
     r"layer 'c2' reads 'res', which is not 'input' or an earlier layer"),
    ("reads an unknown layer", _set(["c2", "inputs"], ["nope"]),
     r"layer 'c2' reads 'nope', which is not 'input' or an earlier layer"),
    ("two membrane outputs", _both(_insert_layer(6, _EXTRA_FC), _arrays(
        lambda a: a.update({"extra.weight": np.zeros((2, 8), np.int8)}))),
     r"exactly one layer, the last, must have output 'membrane' \(found \['extra', 'fc'\]\)"),
    ("no membrane output", _both(_set(["fc", "output"], "spikes"),
                                 _set(["fc", "neuron"], {"threshold": 1, "reset": "zero"})),
     r"exactly one layer, the last, must have output 'membrane' \(found none\)"),
    ("threshold zero", _set(["c1", "neuron", "threshold"], 0),
     r"layer 'c1'\.neuron\.threshold is 0, outside the allowed range 1\.\.2047"),
    ("threshold too big", _set(["c1", "neuron", "threshold"], 2048),
     r"layer 'c1'\.neuron\.threshold is 2048, outside the allowed range 1\.\.2047"),
    ("shift too big", _set(["c1", "neuron", "leak", "shift"], 12),
     r"layer 'c1'\.neuron\.leak\.shift is 12, outside the allowed range 1\.\.11"),
    ("factor too big", _set(["res", "neuron", "leak", "factor"], 5),
     r"layer 'res'\.neuron\.leak\.factor is 5, outside the allowed range 0\.\.4"),
    ("frac_bits too big", _set(["res", "neuron", "leak", "frac_bits"], 17),
     r"layer 'res'\.neuron\.leak\.frac_bits is 17, outside the allowed range 1\.\.16"),
    ("current shift too big", _set(["c1", "neuron", "current_shift"], 16),
     r"layer 'c1'\.neuron\.current_shift is 16, outside the allowed range 0\.\.15"),
    ("negative current shift", _set(["fc", "neuron", "current_shift"], -1),
     r"layer 'fc'\.neuron\.current_shift is -1, outside the allowed range 0\.\.15"),
    ("output membrane narrower", _set(["fc", "neuron", "membrane_bits"], 11),
     r"layer 'fc'\.neuron\.membrane_bits is 11, outside the allowed range 12\.\.32"),
    ("output membrane too wide", _set(["fc", "neuron", "membrane_bits"], 33),
     r"layer 'fc'\.neuron\.membrane_bits is 33, outside the allowed range 12\.\.32"),
    ("hidden membrane width", _set(["c1", "neuron", "membrane_bits"], 16),
     r"layer 'c1'\.neuron has an unknown field 'membrane_bits'"),
    ("reset", _set(["c1", "neuron", "reset"], "soft"),
     r"layer 'c1'\.neuron\.reset is 'soft'; expected one of 'subtract', 'zero'"),
    ("padding >= kernel", _set(["c1", "padding"], [3, 1]),
     r"layer 'c1'\.padding\[0\] is 3; it must be smaller than the kernel \(3\)"),
    ("missing neuron", _set(["ap", "neuron"], _DELETE),
     r"layer 'ap' is missing the field 'neuron' \(it outputs 'spikes'\)"),
    ("neuron on max-pool", _set(["mp", "neuron"], {"threshold": 1, "reset": "zero"}),
     r"layer 'mp' outputs 'spikes' and must not have a 'neuron' object"),
    ("neuron on a current", _set(["c2", "neuron"], {"threshold": 1, "reset": "zero"}),
     r"layer 'c2' outputs 'current' and must not have a 'neuron' object"),
    ("current from add",
     _both(_set(["res", "output"], "current"), _set(["res", "neuron"], _DELETE)),
     r"layer 'res' is add and cannot output 'current'"),
    ("first layer not synaptic", _set(["c1", "type"], "maxpool2d"),
     r"the first layer must be conv2d, conv3d or linear"),
    ("linear on a map", _set(["fc", "inputs"], ["ap"]),
     r"layer 'fc' is linear but its input has shape \[2, 2, 2\]; insert a flatten layer"),
    ("duplicate name", _set(["c2", "name"], "c1"), r"layer 1 reuses the name 'c1'"),
    ("invalid name", _set(["c2", "name"], "input"), r"layer 1 has an invalid name 'input'"),
    ("add scales", _set(["res", "scales"], [1]),
     r"layer 'res'\.scales must list one integer per input"),
    ("raw range", _set(["input", "raw_max"], 0.0),
     r"input\.raw_max \(0\.0\) must be greater than input\.raw_min \(0\.0\)"),
]


@pytest.mark.parametrize("mutate, match", [case[1:] for case in MANIFEST_ERRORS],
                         ids=[case[0] for case in MANIFEST_ERRORS])
def test_manifest_errors(tmp_path, mutate, match):
    manifest, arrays = _base()
    mutate(manifest, arrays)
    with pytest.raises(BundleError, match=match) as error:
        network_from_parts(manifest, arrays)
    assert "\n" not in str(error.value)
    # The writer refuses the same, and leaves neither the file nor a temporary behind.
    with pytest.raises(BundleError, match=match):
        write_bundle(tmp_path / "bad.sfb", manifest, arrays)
    assert os.listdir(tmp_path) == []


def test_base_manifest_is_valid():
    """The error cases above start from a manifest that is itself accepted."""
    network = network_from_parts(*_base())
    assert [layer.type for layer in network.layers] == [
        "conv2d", "conv2d", "add", "maxpool2d", "avgpool2d", "flatten", "linear"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    manifest, arrays = _base()
    path = tmp_path / "net.sfb"
    write_bundle(path, manifest, arrays)
    before = path.read_bytes()

    def broken(array):
        raise OSError("disk full")

    monkeypatch.setattr(bundle_module, "_npy_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        write_bundle(path, manifest, arrays)
    with pytest.raises(OSError, match="disk full"):
        write_bundle(tmp_path / "new.sfb", manifest, arrays)
    assert sorted(os.listdir(tmp_path)) == ["net.sfb"]
    assert path.read_bytes() == before


def test_manifest_that_is_not_json_is_refused(tmp_path):
    manifest, arrays = _base()
    manifest["metadata"] = {"value": float("nan")}
    with pytest.raises(BundleError, match=r"the manifest cannot be stored as JSON"):
        write_bundle(tmp_path / "x.sfb", manifest, arrays)
    assert os.listdir(tmp_path) == []
