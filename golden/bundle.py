"""The model bundle: one file holding an integer SNN (format described in ``docs/bundle.md``).

A bundle is a ZIP archive with ``manifest.json`` and one ``arrays/<name>.npy`` per integer
array (``<layer>.weight``, ``<layer>.bias``). The manifest carries a format version and a
SHA-256 content hash over the manifest and every array, so any change is detected.

Public entry points:

* :func:`write_bundle` -- validate a manifest and its arrays, then write the file atomically;
* :func:`read_bundle` -- read, verify and validate a file into a :class:`Network`;
* :func:`network_to_parts` / :func:`network_from_parts` -- the in-memory round trip.

Every problem with a file or a manifest raises :class:`BundleError` whose message is one
sentence naming what is wrong and where.
"""

import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

from .manifest import (
    FORMAT_NAME, FORMAT_VERSION, BundleError, network_from_parts, network_to_parts,
)
from .network import Network

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "BundleError",
    "read_bundle",
    "write_bundle",
    "write_atomically",
    "network_from_parts",
    "network_to_parts",
    "content_hash",
]

MANIFEST_NAME = "manifest.json"
ARRAY_PREFIX = "arrays/"
#: Fixed ZIP timestamp so that the same network always gives a byte-identical file.
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def _fail(message):
    raise BundleError(message)


# --------------------------------------------------------------------------- hashing and files

def _canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def content_hash(manifest, arrays):
    """SHA-256 over the canonical manifest (without its hash) and every array's bytes."""
    digest = hashlib.sha256()
    body = {k: v for k, v in manifest.items() if k != "content_hash"}
    digest.update(_canonical_json(body).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"\n{name}:{array.dtype.str}:{list(array.shape)}\n".encode())
        digest.update(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return "sha256:" + digest.hexdigest()


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def write_atomically(path, write, *, prefix, suffix=""):
    """Write ``path`` by ``write(temporary path)`` into a temporary file beside it, then rename
    it over ``path``: a failure leaves neither a partial file nor the temporary. The file gets
    the mode a plain ``open()`` would give it."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    os.close(handle)
    try:
        write(temporary)
        # mkstemp creates the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_bundle(path, manifest, arrays=None):
    """Validate and write a bundle; return the validated :class:`Network`.

    ``manifest`` may also be a :class:`Network` (then ``arrays`` is ignored). The file is
    written to a temporary name and renamed, so a failed write leaves nothing behind.
    """
    if isinstance(manifest, Network):
        manifest, arrays = network_to_parts(manifest)
    manifest = {k: v for k, v in manifest.items() if k != "content_hash"}
    arrays = {name: np.asarray(a) for name, a in (arrays or {}).items()}
    try:
        _canonical_json(manifest)
    except (TypeError, ValueError) as error:
        _fail(f"the manifest cannot be stored as JSON ({error})")
    network_from_parts(manifest, arrays)
    manifest["content_hash"] = content_hash(manifest, arrays)

    def write_zip(temporary):
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as zf:
            entries = [(MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True).encode())]
            entries += [(f"{ARRAY_PREFIX}{name}.npy", _npy_bytes(arrays[name]))
                        for name in sorted(arrays)]
            for entry, data in entries:
                info = zipfile.ZipInfo(entry, date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)

    write_atomically(path, write_zip, prefix=".bundle-")
    return network_from_parts(manifest, arrays)


#: The first bytes of an HDF5 file (a NIR graph is one).
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _not_a_bundle(label, head, names=()):
    """The sentence for a file that is another known kind, or ``None``.

    ``head`` is the file's first bytes, ``names`` its entries when it is a ZIP file: a NIR
    graph (HDF5), or a PyTorch file (a ``torch.save`` ZIP holding ``data.pkl``, or a pickle).
    """
    if head.startswith(_HDF5_MAGIC):
        return (f"{label} is not a spikeforge bundle: this is a NIR graph (an HDF5 file); use "
                f"`spikeforge nir import {label} --out BUNDLE`")
    torch_zip = any(name == "data.pkl" or name.endswith("/data.pkl") for name in names)
    if torch_zip or (not names and head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05"):
        return (f"{label} is not a spikeforge bundle: this is a PyTorch file; see docs/api.md "
                f"for turning a PyTorch network into a bundle")
    return None


def read_bundle(path):
    """Read, verify and validate the bundle at ``path``; return a :class:`Network`.

    Raises :class:`BundleError` for a missing, truncated, corrupt, tampered, newer-version or
    otherwise invalid file.
    """
    label = os.fspath(path)
    if not os.path.isfile(label):
        _fail(f"the bundle {label} does not exist or is not a file")
    with open(label, "rb") as handle:
        head = handle.read(len(_HDF5_MAGIC))
    if not zipfile.is_zipfile(label) and _not_a_bundle(label, head):
        _fail(_not_a_bundle(label, head))
    try:
        with zipfile.ZipFile(label) as zf:
            names = zf.namelist()
            if MANIFEST_NAME not in names:
                _fail(_not_a_bundle(label, head, names)
                      or f"{label} has no {MANIFEST_NAME}; it is not a spikeforge bundle")
            try:
                manifest = json.loads(zf.read(MANIFEST_NAME).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                _fail(f"the manifest of {label} is not valid JSON ({error})")
            arrays = {}
            for entry in names:
                if entry == MANIFEST_NAME:
                    continue
                if not (entry.startswith(ARRAY_PREFIX) and entry.endswith(".npy")):
                    _fail(f"{label} contains an unexpected entry {entry!r}")
                key = entry[len(ARRAY_PREFIX):-len(".npy")]
                try:
                    arrays[key] = np.lib.format.read_array(io.BytesIO(zf.read(entry)),
                                                           allow_pickle=False)
                except ValueError as error:
                    _fail(f"the array {key!r} in {label} is not a plain .npy array ({error})")
    except zipfile.BadZipFile as error:
        _fail(f"{label} is truncated or corrupt and cannot be read as a bundle ({error})")
    # A damaged deflate stream raises zlib.error, and a damaged header can claim an
    # unsupported method or encryption (NotImplementedError, RuntimeError).
    except (EOFError, OSError, zipfile.LargeZipFile, zlib.error, NotImplementedError,
            RuntimeError) as error:
        _fail(f"{label} is truncated or corrupt and cannot be read as a bundle ({error})")
    if not isinstance(manifest, dict):
        _fail(f"the manifest of {label} must be a JSON object")
    version = manifest.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        # A newer writer may hash differently: report the version, not a hash mismatch.
        network_from_parts(manifest, arrays)
    stored = manifest.get("content_hash")
    if stored is None:
        _fail(f"the manifest of {label} has no content_hash")
    try:
        actual = content_hash(manifest, arrays)
    except (TypeError, ValueError) as error:
        _fail(f"the manifest of {label} cannot be hashed ({error})")
    if actual != stored:
        _fail(f"{label} does not match its content hash; it was modified or corrupted")
    return network_from_parts(manifest, arrays)
