"""The bundle file: damaged, truncated or foreign files always give one clear BundleError.

No damage may pass silently: a flipped byte anywhere is either refused with a one-sentence
message or (where it hits bytes nothing reads) leaves the network exactly as written.
"""

import io
import json
import os
import zipfile

import numpy as np
import pytest

from bundle_cases import assert_arrays_equal as _arrays_equal, base_bundle as _base
from spikeforge.golden import BundleError, network_to_parts, read_bundle, write_bundle

# ------------------------------------------------------------------------- file errors

def _rezip(source, target, change):
    """Copy the bundle ``source`` to ``target`` with ``change(entries)`` applied to its entries."""
    with zipfile.ZipFile(source) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    change(entries)
    with zipfile.ZipFile(target, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def _edit_manifest(edit):
    def change(entries):
        manifest = json.loads(entries["manifest.json"])
        edit(manifest)
        entries["manifest.json"] = json.dumps(manifest).encode()
    return change


FILE_ERRORS = [
    ("missing manifest", lambda e: e.pop("manifest.json"),
     r"has no manifest\.json; it is not a spikeforge bundle"),
    ("invalid JSON", lambda e: e.update({"manifest.json": b"{\"format\": "}),
     r"the manifest of .* is not valid JSON"),
    ("manifest not an object", lambda e: e.update({"manifest.json": b"[1, 2]"}),
     r"the manifest of .* must be a JSON object"),
    ("no content hash", _edit_manifest(lambda m: m.pop("content_hash")),
     r"the manifest of .* has no content_hash"),
    ("edited manifest", _edit_manifest(lambda m: m["layers"][0]["neuron"].update(threshold=9)),
     r"does not match its content hash; it was modified or corrupted"),
    ("newer version", _edit_manifest(lambda m: m.update(format_version=2)),
     r"the bundle uses format version 2, newer than this spikeforge reads"),
    ("newer version, other hash", _edit_manifest(lambda m: m.update(format_version=3, hash=1)
                                                 or m.pop("content_hash")),
     r"the bundle uses format version 3, newer than this spikeforge reads"),
    ("replaced array", lambda e: e.update({"arrays/fc.weight.npy": e["arrays/fc.weight.npy"][:-1]
                                           + b"\x01"}),
     r"does not match its content hash"),
    ("missing array", lambda e: e.pop("arrays/c2.weight.npy"),
     r"does not match its content hash|the array 'c2\.weight' .* is missing"),
    ("unexpected entry", lambda e: e.update({"readme.txt": b"hi"}),
     r"contains an unexpected entry 'readme\.txt'"),
    ("pickled array", lambda e: e.update({"arrays/fc.weight.npy": _npy(np.array([None]))}),
     r"the array 'fc\.weight' in .* is not a plain \.npy array"),
    ("garbage array", lambda e: e.update({"arrays/fc.weight.npy": b"not numpy"}),
     r"the array 'fc\.weight' in .* is not a plain \.npy array"),
]


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize("change, match", [case[1:] for case in FILE_ERRORS],
                         ids=[case[0] for case in FILE_ERRORS])
def test_file_errors(tmp_path, change, match):
    write_bundle(tmp_path / "good.sfb", *_base())
    _rezip(tmp_path / "good.sfb", tmp_path / "bad.sfb", change)
    with pytest.raises(BundleError, match=match) as error:
        read_bundle(tmp_path / "bad.sfb")
    assert "\n" not in str(error.value)


def test_unchanged_rezip_is_accepted(tmp_path):
    """The file-error cases above fail because of their change, not because of the rezip."""
    write_bundle(tmp_path / "good.sfb", *_base())
    _rezip(tmp_path / "good.sfb", tmp_path / "copy.sfb", lambda entries: None)
    _arrays_equal(network_to_parts(read_bundle(tmp_path / "copy.sfb"))[1], _base()[1])


@pytest.mark.parametrize("content, match", [
    (None, r"does not exist or is not a file"),
    (b"", r"is truncated or corrupt and cannot be read as a bundle"),
    (b"PK\x03\x04 this is not really a zip", r"is truncated or corrupt"),
    (b"just some text\n", r"is truncated or corrupt"),
])
def test_not_a_bundle(tmp_path, content, match):
    path = tmp_path / "x.sfb"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BundleError, match=match) as error:
        read_bundle(path)
    assert "\n" not in str(error.value)


def test_truncated_files(tmp_path):
    path = tmp_path / "net.sfb"
    write_bundle(path, *_base())
    data = path.read_bytes()
    for length in range(0, len(data), 7):
        (tmp_path / "cut.sfb").write_bytes(data[:length])
        with pytest.raises(BundleError, match=r"is truncated or corrupt") as error:
            read_bundle(tmp_path / "cut.sfb")
        assert "\n" not in str(error.value)


def test_flipped_bytes_never_pass_silently(tmp_path):
    """Flip each byte of the file: a BundleError, or (bytes that carry no content) the same net."""
    manifest, arrays = _base()
    path = tmp_path / "net.sfb"
    write_bundle(path, manifest, arrays)
    data = path.read_bytes()
    expected = network_to_parts(read_bundle(path))
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("arrays/fc.weight.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    inside = range(start, start + info.compress_size - 2)  # the deflated array itself
    damaged = tmp_path / "damaged.sfb"
    for offset in range(len(data)):
        flipped = bytearray(data)
        flipped[offset] ^= 0x5A
        damaged.write_bytes(bytes(flipped))
        try:
            network = read_bundle(damaged)
        except BundleError as error:
            assert "\n" not in str(error), offset
            continue
        assert offset not in inside, f"a flipped byte at {offset} inside the array went unseen"
        parts = network_to_parts(network)
        assert parts[0] == expected[0], offset
        _arrays_equal(parts[1], expected[1])


def test_the_documented_example_runs(tmp_path, monkeypatch):
    """docs/bundle.md's Python example works as printed."""
    doc = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "bundle.md")
    with open(doc, encoding="utf-8") as handle:
        text = handle.read()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/bundle.md", "exec"), {"print": lambda *args: None})
    assert read_bundle(tmp_path / "tiny.sfb").name == "tiny"
