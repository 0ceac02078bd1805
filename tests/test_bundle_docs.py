"""What ``docs/bundle.md`` now says precisely: the variants the reader accepts (uncompressed or
reordered entries, unsorted JSON, ``.npy`` 2.0, Fortran order), the refused 2-entry input
shape, the advice for a linear first layer, and the uniform missing-field message."""

import io
import json
import zipfile

import numpy as np
import pytest

from spikeforge.golden import BundleError, network_from_parts, read_bundle
from test_cli import make_digits_bundle


def _rewrite(source, target, *, compression=zipfile.ZIP_DEFLATED, reverse=False,
             manifest_text=None, array_bytes=None):
    """Copy the bundle ``source`` to ``target`` entry by entry, changing how it is stored."""
    with zipfile.ZipFile(source) as archive:
        entries = [(name, archive.read(name)) for name in archive.namelist()]
    if reverse:
        entries.reverse()
    with zipfile.ZipFile(target, "w", compression) as archive:
        for name, data in entries:
            if name == "manifest.json" and manifest_text is not None:
                data = manifest_text(data)
            elif name != "manifest.json" and array_bytes is not None:
                data = array_bytes(data)
            archive.writestr(name, data)


def _npy(data, *, version=None, fortran=False):
    array = np.lib.format.read_array(io.BytesIO(data))
    out = io.BytesIO()
    array = np.asfortranarray(array) if fortran else array
    np.lib.format.write_array(out, array, version=version)
    return out.getvalue()


def _unsorted(data):
    manifest = json.loads(data)
    return json.dumps(dict(reversed(list(manifest.items())))).encode()


@pytest.mark.parametrize("change", [
    {"compression": zipfile.ZIP_STORED},
    {"reverse": True},
    {"manifest_text": _unsorted},
    {"array_bytes": lambda data: _npy(data, version=(2, 0))},
    {"array_bytes": lambda data: _npy(data, fortran=True)},
])
def test_the_reader_accepts_what_the_page_says(tmp_path, change):
    written = make_digits_bundle(tmp_path / "a.sfb")
    _rewrite(tmp_path / "a.sfb", tmp_path / "b.sfb", **change)
    again = read_bundle(tmp_path / "b.sfb")
    assert again.content_hash == written.content_hash


def _manifest(shape, first):
    return {"format": "spikeforge-bundle", "format_version": 1, "name": "n", "timesteps": 2,
            "membrane_bits": 16,
            "input": {"shape": shape, "bits": 8, "raw_min": 0.0, "raw_max": 1.0},
            "layers": [first]}


def test_a_two_entry_input_shape_is_refused():
    first = {"name": "fc", "type": "linear", "output": "membrane", "out_features": 2,
             "weight_bits": 4, "out_shape": [2], "neuron": {}}
    with pytest.raises(BundleError, match=r"^input.shape must be a list of 1, 3 or 4 positive "
                                          r"integers \(\[N\], \[C, H, W\] or \[C, D, H, W\]\), "
                                          r"not \[4, 4\]$"):
        network_from_parts(_manifest([4, 4], first), {})


def test_a_linear_first_layer_on_a_map_gets_no_flatten_advice():
    first = {"name": "fc", "type": "linear", "output": "membrane", "out_features": 2,
             "weight_bits": 4, "out_shape": [2], "neuron": {}}
    with pytest.raises(BundleError, match=r"^layer 'fc' is linear but the network input has "
                                          r"shape \[1, 4, 4\]; a linear first layer needs a "
                                          r"1-entry input shape \[N\]$"):
        network_from_parts(_manifest([1, 4, 4], first), {})


def test_a_missing_neuron_is_a_missing_field():
    first = {"name": "fc", "type": "linear", "output": "membrane", "out_features": 2,
             "weight_bits": 4, "out_shape": [2]}
    with pytest.raises(BundleError, match=r"^layer 'fc' is missing the field 'neuron' \(it "
                                          r"outputs 'membrane'\)$"):
        network_from_parts(_manifest([3], first), {"fc.weight": np.zeros((2, 3), np.int8)})
