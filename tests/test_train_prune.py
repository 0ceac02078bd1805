"""Quantization-aware pruning: masks through the quantizer, sparsity, op counts, BOPs, aIQ, CLI.

The pruning loop runs on a small digits network (a few seconds); the shipped pruned MNIST
bundle gets the exactness test (PyTorch integer simulation == golden model) on the first 1000
test images, as tests/test_train_mnist.py does for the unpruned ones.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import spikeforge
from spikeforge import golden
from spikeforge.golden.bundle import FORMAT_NAME, FORMAT_VERSION
from spikeforge.tools.cli import main
from spikeforge.data.datasets import DatasetError, default_data_dir, digits_split, mnist_test
from spikeforge.data.evaluate import evaluate
from spikeforge.train import prune_metrics
from spikeforge.train.convert import network_parts
from spikeforge.train.digits import INPUT_SPEC, LAYERS
from spikeforge.train.fit import ann_inputs, best_state, train_epochs
from spikeforge.train.prune import (RANKINGS, PruneConfig, _rewind, apply_masks, attach_masks,
                                    global_masks, masks_of, prune_qat, structured_masks)
from spikeforge.train.qnet import QuantNet

from bit_exact import assert_bit_exact

torch.set_num_threads(2)

MODELS = Path(spikeforge.__file__).resolve().parent / "models"
PRUNED = MODELS / "mnist_vgg_pruned.sfb"
DENSE = MODELS / "mnist_vgg.sfb"


def _run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ----------------------------------------------------------------------------- digits net

def _digits_data():
    spec = golden.InputSpec(tuple(INPUT_SPEC["shape"]), INPUT_SPEC["bits"],
                            INPUT_SPEC["raw_min"], INPUT_SPEC["raw_max"])
    split = digits_split()
    x, _ = ann_inputs(split.x_train, spec)
    y = torch.as_tensor(split.y_train)
    x_test, pixels = ann_inputs(split.x_test, spec)
    return spec, x[:1000], y[:1000], x[1000:], y[1000:], x_test, torch.as_tensor(split.y_test), \
        pixels, split.y_test


@pytest.fixture(scope="module")
def trained():
    """A QAT digits net with 4-bit weights (float 5 epochs, quantized 2): its state and data."""
    torch.manual_seed(0)
    spec, x, y, x_val, y_val, x_test, y_test, _, _ = _digits_data()
    net = _digits_net(spec)
    generator = torch.Generator().manual_seed(0)
    common = dict(batch_size=32, weight_decay=1e-4, generator=generator, log=lambda line: None,
                  x_val=x_val, y_val=y_val)
    train_epochs(net, x, y, epochs=5, lr=3e-3, label="float", **common)
    net.calibrate(x, percentile=99.9)
    net.mode = "quant"
    net.calibrate(x, set_lambdas=False)
    start = best_state(net)
    train_epochs(net, x, y, epochs=2, lr=1e-3, label="qrelu", **common)
    data = {"x_train": x, "y_train": y, "x_val": x_val, "y_val": y_val, "x_test": x_test,
            "y_test": y_test, "train_kwargs": common, "lr": 1e-3, "qat_start": start,
            "input_spec": INPUT_SPEC}
    return best_state(net), data


def _digits_net(spec=None):
    spec = spec or golden.InputSpec(tuple(INPUT_SPEC["shape"]), INPUT_SPEC["bits"],
                                    INPUT_SPEC["raw_min"], INPUT_SPEC["raw_max"])
    return QuantNet(spec.shape, LAYERS, input_scale=spec.scale, timesteps=8, levels=8,
                    weight_bits=4)


def _fresh(trained):
    """A new quantized digits net holding the trained state (and the data dict)."""
    state, data = trained
    net = _digits_net()
    net.load_state_dict(state)
    net.mode = "quant"
    return net, data


@pytest.fixture(scope="module")
def pruned_digits(trained):
    net, data = _fresh(trained)
    lines = []
    rows = prune_qat(net, data, PruneConfig(0.7, rounds=2, epochs_per_round=1, final_epochs=2,
                                            metric_images=200), log=lines.append)
    return net, data, rows, lines


def _export(net, tmp_path, name="pruned"):
    manifest, arrays = network_parts(net, name=name, input_spec=INPUT_SPEC,
                                     dataset={"name": "digits"})
    return golden.write_bundle(tmp_path / f"{name}.sfb", manifest, arrays)


def test_masks_export_as_exact_integer_zeros(pruned_digits, tmp_path):
    net, _, rows, lines = pruned_digits
    _export(net, tmp_path)
    network = golden.read_bundle(tmp_path / "pruned.sfb")
    masks = masks_of(net)
    masked = 0
    for layer in network.layers:
        if layer.is_synaptic:
            mask = masks[layer.name]["weight"].numpy()
            assert layer.weight.shape == mask.shape
            assert np.all(layer.weight[mask == 0] == 0), layer.name
            masked += int((mask == 0).sum())
    total = sum(layer.weight.size for layer in network.layers if layer.is_synaptic)
    assert masked == round(0.7 * total)                          # the target, exactly
    assert not masks["conv1"]["weight"].eq(0).any()              # input layer kept by default
    assert [row["round"] for row in rows] == [0, 1, 2]
    assert len([line for line in lines if line.startswith("[prune] round")]) == 3


def test_reported_sparsity_equals_the_bundle_count(pruned_digits, tmp_path):
    net, _, rows, _ = pruned_digits
    _export(net, tmp_path)
    network = golden.read_bundle(tmp_path / "pruned.sfb")
    zeros = total = 0
    for layer in network.layers:
        if layer.weight is not None:
            zeros += int(np.sum(layer.weight.astype(np.int64) == 0))
            total += int(layer.weight.size)
    assert rows[-1]["sparsity"] == round(zeros / total, 6)
    assert rows[-1]["sparsity"] >= rows[-1]["mask_sparsity"] >= 0.7 - 1 / total
    # Round 1 of 2 goes halfway from the quantizer's own zeros (round 0) to the target 0.7.
    start = rows[0]["sparsity"]
    assert 0 < start < 0.7 and rows[1]["target"] == round(start + (0.7 - start) / 2, 6)
    assert rows[0]["mask_sparsity"] == 0 and rows[1]["mask_sparsity"] == round(
        round((start + (0.7 - start) / 2) * total) / total, 6)
    assert rows[-1]["bops"] < rows[0]["bops"]
    assert rows[-1]["bops"] == round(prune_metrics.bops(network)["total"])


def test_pruned_digits_bundle_is_bit_exact_and_still_classifies(pruned_digits, tmp_path):
    net, _, rows, _ = pruned_digits
    network = _export(net, tmp_path)
    _, _, _, _, _, _, _, pixels, labels = _digits_data()
    reference = assert_bit_exact(network, pixels)
    assert float(np.mean(reference.predictions == labels)) > 0.6
    assert rows[-1]["test_accuracy"] > 0.6


def test_global_masks_only_grow_and_rank_by_integer_magnitude(trained):
    net, _ = _fresh(trained)
    attach_masks(net)
    config = PruneConfig(0.5)
    first = global_masks(net, 0.3, config)
    apply_masks(net, first)
    second = global_masks(net, 0.6, config)
    quant = net.quant_layers()
    kept, removed = [], []
    for name, entry in second.items():
        assert torch.all(entry["weight"][first[name]["weight"] == 0] == 0), name
        score = (net.synaptic[name].weight.detach().abs() / quant[name].step).reshape(-1)
        new = (first[name]["weight"].reshape(-1) == 1) & (entry["weight"].reshape(-1) == 0)
        removed.append(score[new])
        kept.append(score[entry["weight"].reshape(-1) == 1])
    assert float(torch.cat(removed).max()) <= float(torch.cat(kept).min())


def test_rewind_restores_the_surviving_weights_of_the_rewind_point(trained):
    net, data = _fresh(trained)
    attach_masks(net)
    apply_masks(net, global_masks(net, 0.5, PruneConfig(0.5)))
    _rewind(net, data["qat_start"])
    masks = masks_of(net)
    for name, module in net.synaptic.items():
        start = data["qat_start"][f"synaptic.{name}.weight"]
        assert torch.equal(module.weight, start * masks[name]["weight"])
        assert torch.equal(module.bias, data["qat_start"][f"synaptic.{name}.bias"])
    for name, lam in net.lams.items():
        assert torch.equal(lam, data["qat_start"][f"lams.{name}"])


def test_structured_pruning_zeroes_whole_channels_and_their_readers(trained, tmp_path):
    net, _ = _fresh(trained)
    attach_masks(net)
    config = PruneConfig(0.4, prune_input_layer=True, mode="structured")
    apply_masks(net, structured_masks(net, 0.4, config))
    network = _export(net, tmp_path, "structured")
    conv1, conv2, fc = (network.layer(n) for n in ("conv1", "conv2", "fc"))
    dead1 = [c for c in range(8) if not conv1.weight[c].any()]
    dead2 = [c for c in range(16) if not conv2.weight[c].any()]
    assert dead1 and dead2 and len(dead1) < 8 and len(dead2) < 16
    for c in dead1:
        assert conv1.bias[c] == 0 and not conv2.weight[:, c].any()
    for c in dead2:   # conv2 (16 x 4 x 4) flattens into fc's inputs c*16 .. c*16+15
        assert conv2.bias[c] == 0 and not fc.weight[:, c * 16:(c + 1) * 16].any()
    zeros = sum(int((layer.weight == 0).sum()) for layer in (conv1, conv2, fc))
    total = sum(layer.weight.size for layer in (conv1, conv2, fc))
    assert zeros / total >= 0.4
    _, _, _, _, _, _, _, pixels, _ = _digits_data()
    reference = assert_bit_exact(network, pixels[:100])
    spikes1 = reference.traces["conv1"].spikes.sum(axis=(0, 1, 3, 4))
    spikes2 = reference.traces["conv2"].spikes.sum(axis=(0, 1, 3, 4))
    assert not spikes1[dead1].any() and not spikes2[dead2].any()   # dead channels never fire
    assert spikes1.sum() > 0 and spikes2.sum() > 0


def test_membrane_prior_prunes_the_channel_that_never_fires(trained):
    # conv2's channel 5 gets the largest weights of its layer and a bias so negative that its
    # membrane never reaches the threshold: the weight ranking keeps it, the membrane prior
    # removes it first (only conv2 is prunable here: conv1 reads pixels, fc is the output).
    def first_removed(mode):
        net, data = _fresh(trained)
        with torch.no_grad():
            conv2 = net.synaptic["conv2"]
            conv2.weight[5] = conv2.weight[5] * 4
            conv2.bias[5] = -1e3
        attach_masks(net)
        config = PruneConfig(0.02, mode=mode, prior_images=200)
        masks = structured_masks(net, 0.02, config, data["x_train"][:200])
        alive = masks["conv2"]["weight"].reshape(16, -1).any(dim=1)
        return [c for c in range(16) if not alive[c]]

    assert first_removed("membrane") == [5]
    removed = first_removed("structured")
    assert len(removed) == 1 and removed != [5]


def test_rounds_report_live_channels_per_layer(trained):
    net, data = _fresh(trained)
    rows = prune_qat(net, data, PruneConfig(0.3, rounds=1, mode="membrane", final_epochs=1,
                                            metric_images=100, prior_images=100),
                     log=lambda line: None)
    assert rows[0]["channels"] == {"conv1": 8, "conv2": 16, "fc": 10}
    assert rows[1]["channels"]["conv1"] == 8 and rows[1]["channels"]["fc"] == 10
    live = masks_of(net)["conv2"]["weight"].reshape(16, -1).any(dim=1)
    assert rows[1]["channels"]["conv2"] == int(live.sum()) < 16


def test_cli_prune_choices_are_the_trainers():
    from spikeforge.tools.train_presets import PRUNE_MODES, PRUNE_VARIANTS
    from spikeforge.train.prune import MODES, VARIANTS

    assert (PRUNE_MODES, PRUNE_VARIANTS) == (MODES, VARIANTS)


def test_prior_images_must_be_a_positive_integer():
    with pytest.raises(ValueError, match=r"^pruning prior images must be a positive integer, "
                                         r"not 0$"):
        PruneConfig(0.5, prior_images=0)


def test_structured_rewind_rounds_retrain_and_export_dead_channels(trained, tmp_path):
    """Both non-default choices end to end: whole channels pruned, survivors rewound to the
    start of QAT and retrained; the export is exact and still classifies."""
    net, data = _fresh(trained)
    lines = []
    rows = prune_qat(net, data, PruneConfig(0.5, rounds=2, mode="structured", variant="rewind",
                                            epochs_per_round=1, final_epochs=1,
                                            metric_images=200), log=lines.append)
    network = _export(net, tmp_path, "structured_rewind")
    conv2, fc = network.layer("conv2"), network.layer("fc")
    dead = [c for c in range(16) if not conv2.weight[c].any()]
    assert 0 < len(dead) < 16
    for c in dead:   # conv2 (16 x 4 x 4) flattens into fc's inputs c*16 .. c*16+15
        assert conv2.bias[c] == 0 and not fc.weight[:, c * 16:(c + 1) * 16].any()
    assert bool(masks_of(net)["conv1"]["weight"].all())          # input layer kept
    assert rows[-1]["mask_sparsity"] >= 0.5 and rows[-1]["sparsity"] >= 0.5
    assert [row["round"] for row in rows] == [0, 1, 2] and len(lines) >= 3
    _, _, _, _, _, _, _, pixels, labels = _digits_data()
    reference = assert_bit_exact(network, pixels)
    assert float(np.mean(reference.predictions == labels)) > 0.6
    spikes = reference.traces["conv2"].spikes                     # (T, N, 16, 4, 4)
    assert not spikes[:, :, dead].any() and spikes.any()


# ----------------------------------------------------------------------------- op counts

def _hand_network(w2, w3):
    """input 1x3x4 (4-bit) -> c1 conv 3x3 pad 1 (2 ch) -> c2 conv 3x3 pad 1 (2 ch) -> flatten
    -> fc 2 (membrane). Both convs get a current of at least their bias 50 >= theta = 10 at
    every step (all weights are >= 0), so every one of their neurons fires at every step."""
    arrays = {"c1.weight": np.zeros((2, 1, 3, 3), dtype=np.int8),
              "c1.bias": np.array([50, 50], dtype=np.int32),
              "c2.weight": np.asarray(w2, dtype=np.int8),
              "c2.bias": np.array([50, 50], dtype=np.int32),
              "fc.weight": np.asarray(w3, dtype=np.int8)}
    arrays["c1.weight"][:, 0, 1, 1] = 1
    conv = {"type": "conv2d", "output": "spikes", "out_channels": 2, "kernel": [3, 3],
            "stride": [1, 1], "padding": [1, 1], "weight_bits": 4, "out_shape": [2, 3, 4],
            "neuron": {"threshold": 10, "reset": "subtract", "v_init": "zero"}}
    layers = [{**conv, "name": "c1", "bias_bits": 8}, {**conv, "name": "c2", "bias_bits": 8},
              {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [24]},
              {"name": "fc", "type": "linear", "output": "membrane", "out_shape": [2],
               "out_features": 2, "weight_bits": 4, "neuron": {}}]
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": "hand",
                "timesteps": 5, "membrane_bits": 16,
                "input": {"shape": [1, 3, 4], "bits": 4, "raw_min": 0.0, "raw_max": 15.0},
                "layers": layers}
    return golden.network_from_parts(manifest, arrays)


def test_op_counts_drop_by_exactly_the_removed_fan_out():
    """c1 and c2 fire at all 2 x 3 x 4 positions at all 5 steps. Removing c2's corner tap
    (co, ci, 0, 0) removes the input positions (y, x) whose output (y + 1, x + 1) is in bounds,
    y + 1 < 3 and x + 1 < 4: 2 * 3 = 6 per step, 30 in all; removing fc weight (o, i) removes
    the 5 spikes of element i."""
    w2 = np.ones((2, 2, 3, 3))
    w3 = np.ones((2, 24))
    x = np.full((1, 1, 3, 4), 7)
    dense = golden.run(_hand_network(w2, w3), x)
    assert dense.spikes["c1"].sum() == 2 * 3 * 4 * 5
    pruned_w2 = w2.copy()
    pruned_w2[1, 0, 0, 0] = 0
    pruned_w3 = w3.copy()
    pruned_w3[0, 7] = 0
    pruned = golden.run(_hand_network(pruned_w2, pruned_w3), x)
    for name in ("c1", "c2"):
        assert pruned.spikes[name].sum() == dense.spikes[name].sum() == 2 * 3 * 4 * 5
    # Dense: an input at row y / column x reaches 2, 3, 2 rows and 2, 3, 3, 2 columns of
    # outputs, in 2 output channels, for 2 input channels and 5 steps.
    assert dense.synaptic_ops["c2"].sum() == 5 * 2 * 2 * (2 + 3 + 2) * (2 + 3 + 3 + 2)
    assert dense.synaptic_ops["c2"].sum() - pruned.synaptic_ops["c2"].sum() == 2 * 3 * 5
    assert dense.synaptic_ops["fc"].sum() == 5 * 24 * 2
    assert dense.synaptic_ops["fc"].sum() - pruned.synaptic_ops["fc"].sum() == 5
    # The first layer's MACs: c1 has 1 non-zero tap per channel, 12 in-bounds positions each.
    assert dense.first_layer_macs[0] == 2 * 12


# ----------------------------------------------------------------------------- metrics

def test_bops_formula_on_a_hand_computed_layer_and_the_papers_mlp():
    # m = 2 outputs, n = 4 inputs, p = 3/8, b_w = 4, b_a = 8: 2*4*(3/8*32 + 8 + 4 + 2) = 208.
    assert prune_metrics.layer_bops(outputs=2, fan_in=4, weight_bits=4, input_bits=8,
                                    nonzero_fraction=3 / 8) == 208.0
    # Ps and Qs' 16-64-32-32-5 jet tagger, 32-bit input, the later layers' b_a = previous b_w
    # (papers.md section 3.6: 4.65 M dense at 32 bits, 0.12 M at 4 bits and 80 % pruned).
    def mlp(bits, p):
        sizes, total, b_a = [16, 64, 32, 32, 5], 0.0, 32
        for n, m in zip(sizes, sizes[1:]):
            total += prune_metrics.layer_bops(outputs=m, fan_in=n, weight_bits=bits,
                                              input_bits=b_a, nonzero_fraction=p)
            b_a = bits
        return total
    assert round(mlp(32, 1.0) / 1e6, 2) == 4.65 and round(mlp(4, 0.2) / 1e6, 2) == 0.12


def test_bops_of_a_bundle_use_pixel_bits_first_and_spike_count_bits_later():
    w2 = np.ones((2, 2, 3, 3))
    w2[0, 0] = 0
    network = _hand_network(w2, np.ones((2, 24)))
    result = prune_metrics.bops(network)
    c1, c2, fc = (result["layers"][n] for n in ("c1", "c2", "fc"))
    assert (c1["input_bits"], c2["input_bits"]) == (4, 3)        # pixels; ceil(log2(T+1))
    assert c1["outputs"] == c2["outputs"] == 24 and c1["fan_in"] == 9 and c2["fan_in"] == 18
    assert c2["nonzero_fraction"] == 27 / 36
    assert c2["bops"] == 24 * 18 * (27 / 36 * 3 * 4 + 3 + 4 + math.log2(18))
    assert c1["bops"] == 24 * 9 * (2 / 18 * 4 * 4 + 4 + 4 + math.log2(9))
    assert result["total"] == c1["bops"] + c2["bops"] + fc["bops"]


def test_efficiency_and_aiq_on_hand_made_microstates():
    four = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)   # 4 states, 2 bits
    assert prune_metrics.layer_efficiency(four) == 1.0
    assert prune_metrics.layer_efficiency(np.array([[1, 0], [1, 0], [0, 1], [0, 1]])) == 0.5
    assert prune_metrics.layer_efficiency(np.ones((5, 3))) == 0.0
    # conv: one microstate per image and pixel, over the channel axis: here 2 states of 2 bits.
    conv = np.zeros((1, 2, 1, 2))
    conv[0, 0, 0, 0] = 1.0
    assert prune_metrics.layer_efficiency(conv) == 0.5
    assert prune_metrics.network_efficiency([0.5, 0.125]) == pytest.approx(0.25, abs=1e-15)
    assert prune_metrics.aiq(0.9, 0.5) == pytest.approx((0.81 * 0.5) ** (1 / 3), abs=1e-15)


# ----------------------------------------------------------------------------- CLI

@pytest.mark.parametrize("value, fragment", [
    ("1", "1 is not a sparsity fraction in 0 <= S < 1"),
    ("1.5", "1.5 is not a sparsity fraction"),
    ("-0.1", "-0.1 is not a sparsity fraction"),
    ("nan", "nan is not a sparsity fraction"),
    ("most", "'most' is not a number"),
])
def test_bad_prune_value_is_one_line_and_exit_2(value, fragment, tmp_path, capsys):
    status, out, err = _run(["train", "mnist-vgg", "--out", str(tmp_path / "x.sfb"),
                             "--prune", value], capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("spikeforge: error: ") and fragment in err


@pytest.mark.parametrize("argv, fragment", [
    (["--prune-rounds", "3"], "--prune-rounds needs --prune"),
    (["--prune-variant", "rewind"], "--prune-variant needs --prune"),
    (["--prune", "0.5", "--prune-mode", "random"], "invalid choice: 'random'"),
])
def test_prune_options_need_prune_and_valid_choices(argv, fragment, tmp_path, capsys):
    status, out, err = _run(["train", "mnist-vgg", "--out", str(tmp_path / "x.sfb"), *argv],
                            capsys)
    assert status == 2 and out == "" and err.count("\n") == 1 and fragment in err


def test_prune_on_digits_is_refused_in_one_line(tmp_path, capsys):
    status, out, err = _run(["train", "digits-conv", "--out", str(tmp_path / "x.sfb"),
                             "--prune", "0.5"], capsys)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "not for digits-conv" in err and not (tmp_path / "x.sfb").exists()


def _mnist():
    try:
        return mnist_test(default_data_dir())
    except DatasetError as error:  # the data folder lives outside the repository
        pytest.skip(f"MNIST is not available: {error}")


@pytest.mark.parametrize("mode, variant", [("structured", "rewind"), ("membrane", "finetune")])
def test_cli_prunes_a_small_mnist_run_and_records_every_round(mode, variant, tmp_path, capsys):
    """--train-limit smoke runs of the channel modes (the shipped bundle covers global
    fine-tuning): options reach the loop, rounds reach the metadata."""
    raw, labels = _mnist()
    out = tmp_path / "p.sfb"
    status, text, err = _run(["train", "mnist-vgg", "--out", str(out), "--epochs", "1",
                              "--train-limit", "16", "--prune", "0.6", "--prune-rounds", "2",
                              "--prune-epochs", "1", "--prune-final-epochs", "1",
                              "--prune-mode", mode, "--prune-variant", variant],
                             capsys)
    assert status == 0, err
    assert "[prune] round 0/2" in err and "[prune] round 2/2" in err
    assert "of the weights zero" in text
    network = golden.read_bundle(out)
    pruning = network.metadata["pruning"]
    assert network.name == "mnist_vgg_pruned"
    assert [row["round"] for row in pruning["rounds"]] == [0, 1, 2]
    assert (pruning["sparsity"], pruning["mode"], pruning["variant"]) == (0.6, mode, variant)
    assert pruning["score"] == RANKINGS[mode]
    synaptic = {layer.name for layer in network.layers if layer.is_synaptic}
    assert all(set(row["channels"]) == synaptic for row in pruning["rounds"])
    assert pruning["rounds"][0]["channels"] == {
        layer.name: layer.out_shape[0] for layer in network.layers if layer.is_synaptic}
    last = pruning["rounds"][-1]
    assert last["snn_accuracy"] == network.metadata["snn_accuracy"]
    assert last["sparsity"] == round(prune_metrics.weight_sparsity(network), 6) >= 0.6
    assert evaluate(network, raw[:16], labels[:16]).accuracy == last["snn_accuracy"]
    # Whole output channels are gone, and so are the next layer's weights that read them.
    conv4, conv5 = network.layer("conv4"), network.layer("conv5")
    dead = [c for c in range(64) if not conv4.weight[c].any()]
    assert dead and not conv5.weight[:, dead].any()


# ----------------------------------------------------------------------------- shipped bundle

def test_shipped_pruned_bundle_meets_the_target():
    network = golden.read_bundle(PRUNED)
    dense = golden.read_bundle(DENSE)
    assert PRUNED.stat().st_size < 200 * 1024
    assert (network.timesteps, network.membrane_bits, network.input.bits) == (8, 16, 8)
    assert all(layer.weight_bits == 4 for layer in network.layers if layer.is_synaptic)
    meta, pruning = network.metadata, network.metadata["pruning"]
    sparsity = prune_metrics.weight_sparsity(network)
    assert sparsity >= 0.8 and pruning["rounds"][-1]["sparsity"] == round(sparsity, 6)
    assert pruning["rounds"][-1]["mask_sparsity"] >= 0.8
    assert meta["test_images"] == 10000 and meta["preset"] == "mnist-vgg"
    # The target: at most 0.5 points below the unpruned shipped model (golden, t10k).
    assert meta["snn_accuracy"] >= dense.metadata["snn_accuracy"] - 0.005
    assert pruning["rounds"][-1]["snn_accuracy"] == meta["snn_accuracy"]
    # BOPs by the Ps-and-Qs formula: the recorded value is the bundle's, and below the dense
    # model's (the formula's accumulator term m * n * (b_a + b_w + log2 n) does not shrink
    # with pruning, so it cannot fall below 0.59 of the dense model's BOPs here).
    pruned_bops, dense_bops = (prune_metrics.bops(n)["total"] for n in (network, dense))
    assert pruning["rounds"][-1]["bops"] == round(pruned_bops) and pruned_bops < dense_bops
    # Fewer accumulates per input event: the fan-out of every pruned layer shrinks (the
    # direct-encoded first layer is not pruned).
    for layer in network.layers:
        if layer.is_synaptic and not layer.is_direct_encoded:
            assert np.count_nonzero(layer.weight) < np.count_nonzero(dense.layer(
                layer.name).weight), layer.name


def test_shipped_pruned_bundle_is_bit_exact_on_1000_test_images():
    network = golden.read_bundle(PRUNED)
    raw, labels = _mnist()
    raw, labels = raw[:1000], labels[:1000]
    x = golden.quantize_input(raw, network.input)
    predictions, ops = [], 0
    for first in range(0, 1000, 100):
        reference = assert_bit_exact(network, x[first:first + 100])
        predictions.append(reference.predictions)
        ops += reference.total_synaptic_ops
        for name, count in reference.spikes.items():   # every spiking layer still fires
            assert count.sum() > 0, name
    correct = int((np.concatenate(predictions) == labels).sum())
    assert correct / 1000 >= 0.98
    # Pruned weights cost no accumulates: if the zeros were counted, the event-driven work
    # would stay near the dense model's (both fire at similar rates); with a fifth of the
    # weights left (the dense model keeps 63 %) it must drop well below.
    dense = golden.run(golden.read_bundle(DENSE), x[:200]).total_synaptic_ops
    pruned = golden.run(network, x[:200]).total_synaptic_ops
    assert pruned < 0.6 * dense and ops > 0


def test_golden_cli_reproduces_the_recorded_accuracy_of_the_pruned_bundle(capsys):
    _mnist()
    status, out, err = _run(["golden", str(PRUNED), "--dataset", "mnist", "--json"], capsys)
    assert status == 0, err
    summary = json.loads(out)
    network = golden.read_bundle(PRUNED)
    assert summary["images"] == network.metadata["test_images"] == 10000
    assert summary["accuracy"] == network.metadata["snn_accuracy"]
    assert summary["accuracy"] == network.metadata["pruning"]["rounds"][-1]["snn_accuracy"]
