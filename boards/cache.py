"""Where slow, deterministic results (synthesis reports, simulator builds) are kept.

``$SPIKEFORGE_CACHE`` if set, else ``$XDG_CACHE_HOME/spikeforge`` (``~/.cache/spikeforge``).
Entries are keyed by a hash of their input (the Verilog text and the tool's options), so a
changed design never reuses a stale entry; deleting the folder is always safe.
"""

import hashlib
import os
from pathlib import Path

__all__ = ["cache_dir", "text_key"]


def cache_dir(kind):
    """The folder for one kind of entry (created)."""
    root = os.environ.get("SPIKEFORGE_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "spikeforge"
    path = Path(root) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def text_key(*parts):
    """A short SHA-256 key of the given strings (in order)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]
