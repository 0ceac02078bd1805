"""The hyperspectral split rebuilt from ``docs/bundle.md`` alone.

The code below follows the page's numbered algorithm (generator, seed use, class order,
rounding, draw order, hash bytes) and deliberately imports nothing from
``spikeforge.data.hsi``: it reads the ground truth with SciPy and recomputes the test pixels
of the shipped Indian Pines bundles, whose recorded ``split.test_sha256`` must match.
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from spikeforge.golden import read_bundle

REPO = Path(__file__).resolve().parents[1]
# The shared datasets next to the checkout (../shared), or next to its folder of worktrees.
CANDIDATES = [REPO / ".." / "shared" / "datasets", REPO / ".." / ".." / "shared" / "datasets"]
GT = next((path / "hsi" / "Indian_pines_gt.mat" for path in CANDIDATES
           if (path / "hsi" / "Indian_pines_gt.mat").is_file()), None)


def documented_random_split(gt, train_fraction, seed):
    """Steps 1-3 of the page for ``kind = random``: sorted flat test indices."""
    flat = gt.ravel()                                   # row-major: y * W + x
    rng = np.random.RandomState(seed)
    test = []
    for c in range(1, int(flat.max()) + 1):
        pixels = np.flatnonzero(flat == c)
        if len(pixels) == 0:
            continue
        order = rng.permutation(pixels)
        count = min(len(pixels), max(1, int(np.floor(train_fraction * len(pixels) + 0.5))))
        test.extend(order[count:].tolist())
    return np.sort(np.asarray(test, dtype=np.int64))


def documented_hash(pixels):
    """Step 4: sha256 of the sorted indices as little-endian int64."""
    return "sha256:" + hashlib.sha256(np.sort(pixels).astype("<i8").tobytes()).hexdigest()


@pytest.mark.skipif(GT is None, reason="the Indian Pines ground truth is not in ../shared")
@pytest.mark.parametrize("bundle", ["indian_pines_3d", "indian_pines_hybrid"])
def test_shipped_split_rebuilt_from_the_page(bundle):
    from scipy.io import loadmat

    split = read_bundle(REPO / "spikeforge" / "models" / f"{bundle}.sfb").dataset["hsi"]["split"]
    assert split["kind"] == "random"
    gt = loadmat(GT)["indian_pines_gt"]
    test = documented_random_split(gt, split["train_fraction"], split["seed"])
    assert len(test) == split["test_pixels"]
    assert int((gt.ravel() > 0).sum()) - len(test) == split["train_pixels"]
    assert documented_hash(test) == split["test_sha256"]


def test_the_hash_is_over_sorted_little_endian_int64():
    pixels = np.array([5, 1, 300], dtype=np.int64)
    expected = hashlib.sha256(b"".join(int(p).to_bytes(8, "little") for p in (1, 5, 300)))
    assert documented_hash(pixels) == "sha256:" + expected.hexdigest()
