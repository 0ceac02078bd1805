"""Hyperspectral data pipeline (spikeforge.data.hsi): loading, integer PCA, patches, splits,
metrics, the recorded pipeline, and `spikeforge golden` on a hyperspectral bundle.

The loader is exercised on small synthetic .mat files written here with each scene's usual
variable names (the Pavia University and Salinas cubes are not in ../shared/datasets), and on
the real Indian Pines files.
"""

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from spikeforge import golden
from spikeforge.golden.bundle import FORMAT_NAME, FORMAT_VERSION
from spikeforge.data import hsi
from spikeforge.tools.cli import main
from spikeforge.data.datasets import DatasetError, default_data_dir

SHARED = default_data_dir(Path(__file__).resolve().parent.parent)
#: Labelled pixels per class of Indian Pines (../shared/datasets/README.md).
INDIAN_PINES_COUNTS = [46, 1428, 830, 237, 483, 730, 28, 478, 20, 972, 2455, 593, 205, 1265,
                       386, 93]


def synthetic_scene(height=14, width=12, bands=10, seed=0):
    """A cube whose 3 classes have distinct mean spectra, and a label map with unlabelled 0s."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((height, width), dtype=np.uint8)
    gt[1:6, 1:6], gt[1:6, 7:11], gt[8:13, 2:10] = 1, 2, 3
    gt[3, 3] = 0
    spectra = rng.integers(1000, 5000, (4, bands))
    cube = spectra[gt] + rng.integers(0, 300, (height, width, bands))
    return cube.astype(np.uint16), gt


def write_scene(folder, name, cube, gt, cube_key=None, gt_key=None):
    files = hsi.SCENES[name]
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / files.cube, {cube_key or files.cube_keys[0]: cube})
    savemat(folder / files.gt, {gt_key or files.gt_keys[0]: gt})


# ----------------------------------------------------------------------------- loading

@pytest.mark.parametrize("name", sorted(hsi.SCENES))
def test_each_scene_loads_its_usual_variable_names(tmp_path, name):
    cube, gt = synthetic_scene()
    write_scene(tmp_path / "hsi", name, cube, gt)
    scene = hsi.load_scene(name, tmp_path)
    np.testing.assert_array_equal(scene.cube, cube)
    np.testing.assert_array_equal(scene.gt, gt)
    assert scene.gt.dtype == np.int64 and scene.num_classes == 3
    assert scene.labelled == int((gt > 0).sum())


def test_alternative_and_unusual_variable_names(tmp_path):
    cube, gt = synthetic_scene()
    write_scene(tmp_path / "hsi", "pavia-university", cube, gt, cube_key="PaviaU",
                gt_key="my_labels")   # a known alias, and the only 2-D array of its file
    scene = hsi.load_scene("pavia-university", tmp_path)
    np.testing.assert_array_equal(scene.gt, gt)
    savemat(tmp_path / "hsi" / "PaviaU_gt.mat", {"a": gt, "b": gt})
    with pytest.raises(DatasetError, match=r"PaviaU_gt.mat has no \(H, W\) label map variable"):
        hsi.load_scene("pavia-university", tmp_path)


@pytest.mark.parametrize("name, missing", [("pavia-university", "PaviaU.mat"),
                                           ("salinas", "Salinas_corrected.mat")])
def test_missing_cubes_name_the_file_and_where_to_put_it(name, missing):
    with pytest.raises(DatasetError) as error:
        hsi.load_scene(name, SHARED)   # only the ground truth of these two is shared
    message = str(error.value)
    assert missing in message and str(SHARED / "hsi") in message and "put it in" in message
    assert message.count(".") <= 3 and "\n" not in message


def test_missing_cube_is_named(tmp_path):
    with pytest.raises(DatasetError, match="Indian Pines cube file Indian_pines_corrected.mat "
                                           "is missing"):
        hsi.load_scene("indian-pines", tmp_path)


def test_missing_ground_truth_is_named(tmp_path):
    cube, gt = synthetic_scene()
    write_scene(tmp_path / "hsi", "salinas", cube, gt)
    (tmp_path / "hsi" / "Salinas_gt.mat").unlink()
    with pytest.raises(DatasetError, match="ground truth file Salinas_gt.mat is missing"):
        hsi.load_scene("salinas", tmp_path)


def test_matlab_v73_and_corrupt_files_are_refused_clearly(tmp_path):
    cube, gt = synthetic_scene()
    write_scene(tmp_path / "hsi", "indian-pines", cube, gt)
    path = tmp_path / "hsi" / "Indian_pines_corrected.mat"
    path.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(512, b" ") + b"\x89HDF")
    with pytest.raises(DatasetError, match=r"v7\.3 \(HDF5\).*-v7"):
        hsi.load_scene("indian-pines", tmp_path)
    path.write_bytes(b"not a MATLAB file at all")
    with pytest.raises(DatasetError, match="Indian_pines_corrected.mat cannot be read"):
        hsi.load_scene("indian-pines", tmp_path)


def test_label_map_of_the_wrong_shape_is_refused(tmp_path):
    cube, gt = synthetic_scene()
    write_scene(tmp_path / "hsi", "salinas", cube, gt[:-1])
    with pytest.raises(DatasetError, match=r"labels of shape \(13, 12\).*\(14, 12\)"):
        hsi.load_scene("salinas", tmp_path)


def test_real_indian_pines():
    scene = hsi.load_scene("indian-pines", SHARED)
    assert scene.cube.shape == (145, 145, 200) and scene.num_classes == 16
    assert scene.labelled == 10249
    assert np.bincount(scene.gt.reshape(-1), minlength=17)[1:].tolist() == INDIAN_PINES_COUNTS


# ----------------------------------------------------------------------------- integer PCA

def test_integer_pca_is_exact_and_has_unit_variance_components():
    cube, _ = synthetic_scene(bands=12)
    mean, weights, shift = hsi.fit_pca(cube, 4)
    assert weights.shape == (4, 12) and 2 ** 14 <= np.abs(weights).max() < 2 ** 15
    raw = hsi.project(cube, mean, weights, shift)
    assert np.allclose(raw.reshape(-1, 4).std(axis=0, ddof=1), 1.0, atol=1e-3)
    # Exact: the same sum in Python integers and fractions, pixel by pixel.
    for y, x in [(0, 0), (5, 7), (13, 11)]:
        for k in range(4):
            total = sum((int(cube[y, x, b]) - int(mean[b])) * int(weights[k, b])
                        for b in range(12))
            assert Fraction(raw[y, x, k]) == Fraction(total, 2 ** shift)
    again = hsi.fit_pca(cube, 4)
    np.testing.assert_array_equal(again[1], weights)


def test_patches_use_reflect_padding():
    values = np.arange(5 * 4 * 2, dtype=np.float64).reshape(5, 4, 2)
    got = hsi.patches(values, [0, 4 * 3 + 2], 3)       # pixels (0, 0) and (3, 2)
    assert got.shape == (2, 1, 2, 3, 3)
    # (0, 0): rows -1, 0, 1 -> 1, 0, 1 and columns likewise (numpy "reflect": no edge repeat).
    expected = values[[1, 0, 1]][:, [1, 0, 1]].transpose(2, 0, 1)
    np.testing.assert_array_equal(got[0, 0], expected)
    np.testing.assert_array_equal(got[1, 0], values[2:5, 1:4].transpose(2, 0, 1))
    with pytest.raises(ValueError, match="odd"):
        hsi.patches(values, [0], 4)


# ----------------------------------------------------------------------------- splits

def test_random_split_is_stratified_and_deterministic():
    gt = hsi.load_scene("indian-pines", SHARED).gt
    train, test = hsi.random_split(gt, 0.3, 0)
    flat = gt.reshape(-1)
    expected = [max(1, int(Fraction(3, 10) * n + Fraction(1, 2))) for n in INDIAN_PINES_COUNTS]
    assert np.bincount(flat[train], minlength=17)[1:].tolist() == expected
    assert len(train) == 3076 and len(test) == 10249 - 3076
    assert not set(train) & set(test) and (flat[np.concatenate([train, test])] > 0).all()
    again = hsi.random_split(gt, 0.3, 0)
    np.testing.assert_array_equal(again[1], test)
    assert hsi.split_hash(hsi.random_split(gt, 0.3, 1)[1]) != hsi.split_hash(test)
    ten = hsi.random_split(gt, 0.1, 0)[0]
    assert np.bincount(flat[ten], minlength=17)[1:].min() >= 1   # Oats: 2 of 20


def test_disjoint_split_keeps_every_test_pixel_out_of_training_patches():
    gt = hsi.load_scene("indian-pines", SHARED).gt
    radius = 5
    train, test, buffer = hsi.disjoint_split(gt, 0.3, 0, radius=radius)
    flat = gt.reshape(-1)
    random_train = hsi.random_split(gt, 0.3, 0)[0]
    assert np.array_equal(np.bincount(flat[train], minlength=17),
                          np.bincount(flat[random_train], minlength=17))
    assert len(train) + len(test) + len(buffer) == 10249
    ty, tx = np.divmod(train, gt.shape[1])
    for pixel in test[::7]:
        y, x = divmod(int(pixel), gt.shape[1])
        assert np.maximum(np.abs(ty - y), np.abs(tx - x)).min() > radius
    for pixel in buffer[::7]:
        y, x = divmod(int(pixel), gt.shape[1])
        assert np.maximum(np.abs(ty - y), np.abs(tx - x)).min() <= radius


# ----------------------------------------------------------------------------- metrics

def test_oa_aa_kappa_of_a_hand_worked_confusion_matrix():
    # Confusion (rows true, columns predicted): [[3, 1], [0, 2]] over 6 samples.
    labels = [0, 0, 0, 0, 1, 1]
    predictions = [0, 0, 0, 1, 1, 1]
    metrics = hsi.classification_metrics(labels, predictions, 3)   # class 2 absent
    assert metrics["oa"] == pytest.approx(5 / 6)
    assert metrics["aa"] == pytest.approx((3 / 4 + 1) / 2)
    chance = (4 * 3 + 2 * 3) / 36                                  # row x column totals
    assert metrics["kappa"] == pytest.approx((5 / 6 - chance) / (1 - chance))
    assert metrics["per_class"] == [0.75, 1.0, None]


# ----------------------------------------------------------------------------- the record

def test_rebuilt_test_split_equals_the_built_one_and_detects_changes(tmp_path):
    cube, gt = synthetic_scene()
    write_scene(tmp_path / "hsi", "salinas", cube, gt)
    scene = hsi.load_scene("salinas", tmp_path)
    for kind in ("random", "disjoint"):
        data = hsi.build(scene, components=3, patch=3, split=kind, fraction=0.4, seed=2)
        record = json.loads(json.dumps(data.record))      # as stored in a bundle
        x, y, description = hsi.rebuild_test(record, tmp_path)
        np.testing.assert_array_equal(x, data.x_test)
        np.testing.assert_array_equal(y, data.y_test)
        assert kind in description and "seed 2" in description
    record["split"]["seed"] = 3
    with pytest.raises(DatasetError, match="differs from the one the bundle records"):
        hsi.rebuild_test(record, tmp_path)
    record["split"]["seed"] = "two"
    with pytest.raises(DatasetError, match="split.seed is 'two', not an integer"):
        hsi.rebuild_test(record, tmp_path)
    del record["pca"]
    with pytest.raises(DatasetError, match="is missing the field 'pca.components'"):
        hsi.rebuild_test(record, tmp_path)


def _tiny_bundle(path, record):
    """A hand-made conv3d SNN over (1, 3, 3, 3) patches: enough to drive `spikeforge golden`."""
    rng = np.random.default_rng(1)
    layers = [
        {"name": "c1", "type": "conv3d", "output": "spikes", "out_shape": [4, 1, 1, 1],
         "out_channels": 4, "kernel": [3, 3, 3], "stride": [1, 1, 1], "padding": [0, 0, 0],
         "weight_bits": 6, "neuron": {"threshold": 200, "reset": "subtract",
                                      "leak": {"kind": "mul", "factor": 200, "frac_bits": 8}}},
        {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [4]},
        {"name": "fc", "type": "linear", "output": "membrane", "out_shape": [3],
         "out_features": 3, "weight_bits": 6, "neuron": {}},
    ]
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": "tiny_hsi",
                "timesteps": 4, "membrane_bits": 16,
                "input": {"shape": [1, 3, 3, 3], "bits": 8, "raw_min": -4.0, "raw_max": 4.0},
                "layers": layers, "dataset": {"name": "salinas", "hsi": record}}
    arrays = {"c1.weight": rng.integers(-31, 32, (4, 1, 3, 3, 3)).astype(np.int8),
              "fc.weight": rng.integers(-31, 32, (3, 4)).astype(np.int8)}
    return golden.write_bundle(path, manifest, arrays)


def test_golden_cli_reports_oa_aa_kappa_for_a_hyperspectral_bundle(tmp_path, capsys):
    cube, gt = synthetic_scene()
    write_scene(tmp_path / "data" / "hsi", "salinas", cube, gt)
    data = hsi.build(hsi.load_scene("salinas", tmp_path / "data"), components=3, patch=3,
                     fraction=0.3, seed=0)
    network = _tiny_bundle(tmp_path / "tiny.sfb", data.record)
    argv = ["golden", str(tmp_path / "tiny.sfb"), "--data-dir", str(tmp_path / "data")]
    assert main(argv + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    x = golden.quantize_input(data.x_test, network.input)
    predictions = golden.run(network, x).predictions
    assert summary["images"] == len(data.y_test) and summary["dataset"] == "salinas"
    assert summary["correct"] == int((predictions == data.y_test).sum())
    expected = hsi.classification_metrics(data.y_test, predictions, 3)
    for key in ("oa", "aa", "kappa"):
        assert summary["classification"][key] == expected[key]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"OA/AA/kappa {100 * expected['oa']:.2f} %" in text and "Salinas" in text
    # The digits bundle records no hyperspectral pipeline: one clear line, exit 2.
    assert main(["golden", "--dataset", "salinas", "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "records no hyperspectral pipeline" in err
    # A bundle made for one scene is not evaluated on another.
    assert main(argv + ["--dataset", "indian-pines"]) == 2
    assert "was made for the hyperspectral scene 'salinas'" in capsys.readouterr().err
