"""``spikeforge.train.from_torch`` and ``spikeforge train custom``: the torch.fx mapping, its
refusals (one per refusal, the message matched in full), a short training run and the CLI."""

import numpy as np
import pytest

from spikeforge import golden
from spikeforge.tools.cli import main
from spikeforge.data.datasets import DIGITS_SPLIT, digits_split

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from spikeforge.train import UnmappableModule, from_torch  # noqa: E402
from spikeforge.train.fxmap import SUPPORTED, map_module  # noqa: E402

torch.set_num_threads(2)
S = nn.Sequential
X = torch.zeros(2, 1, 8, 8)


class _Lambda(nn.Module):
    """conv c (1->4, 3x3, pad 1), conv d (4->4), fc (256->10) and a forward given as a function."""

    def __init__(self, forward):
        super().__init__()
        self.c = nn.Conv2d(1, 4, 3, padding=1)
        self.d = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(256, 10)
        self._forward = forward

    def forward(self, x):
        return self._forward(self, x)


class _TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x, y):
        return self.fc(x.flatten(1))


def _head(*layers, features=144):
    return S(*layers, nn.Flatten(), nn.Linear(features, 10))


_CASES = {
    "gelu": (_head(nn.Conv2d(1, 4, 3), nn.GELU()),
             "1 (GELU): only ReLU activations convert to IF neurons"),
    "softmax_output": (S(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10),
                         nn.Softmax(1)),
                       "4 (Softmax): only ReLU activations convert to IF neurons"),
    "unknown_module": (_head(nn.Conv2d(1, 4, 3), nn.LayerNorm([4, 6, 6]), nn.ReLU()),
                       f"1 (LayerNorm): spikeforge has no layer for it (it maps {SUPPORTED})"),
    "groups": (_head(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=2), nn.ReLU(),
                     features=64),
               "2 (Conv2d): it has groups=2; only dense convolutions (groups=1) are mapped"),
    "dilation": (_head(nn.Conv2d(1, 4, 3, dilation=2), nn.ReLU(), features=64),
                 "0 (Conv2d): it has dilation (2, 2); only undilated convolutions are mapped"),
    "padding_mode": (_head(nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                           features=256),
                     "0 (Conv2d): it pads with 'reflect'; only zero padding is mapped"),
    "rectangular_kernel": (_head(nn.Conv2d(1, 4, (3, 1)), nn.ReLU(), features=192),
                           "0 (Conv2d): its kernel size (3, 1) differs between axes or is not "
                           "an integer; the accelerator's kernels use one kernel size on every "
                           "axis"),
    "batchnorm_after_relu": (_head(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)),
                             "2 (BatchNorm2d): a batch norm folds only into the Conv or Linear "
                             "layer directly before it"),
    "batchnorm_without_statistics": (
        _head(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU()),
        "1 (BatchNorm2d): it keeps no running statistics (track_running_stats=False), so it "
        "cannot be folded into the layer before it"),
    "no_relu_between": (_head(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3), nn.ReLU(), features=64),
                        "1 (Conv2d): it reads the output of 0 before any activation; a Conv or "
                        "Linear layer reads the input or a ReLU output (put a ReLU between two "
                        "synaptic layers)"),
    "pool_before_relu": (_head(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.ReLU(), features=36),
                         "1 (MaxPool2d): it pools a value before its activation; pools map "
                         "onto spike outputs, so put them after a ReLU"),
    "pool_of_input": (_head(nn.AvgPool2d(2), nn.Conv2d(1, 4, 3), nn.ReLU(), features=16),
                      "0 (AvgPool2d): it pools the network input; pools map onto spike "
                      "outputs, so put them after a ReLU"),
    "adaptive_pool_not_global": (
        _head(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), features=16),
        "2 (AdaptiveAvgPool2d): its output size is 2; only a global average pool (output "
        "size 1) is mapped"),
    "adaptive_pool_rectangular_map": (
        _head(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), features=4),
        "2 (AdaptiveAvgPool2d): it averages a 6x4 map; only square maps are pooled",
        torch.zeros(2, 1, 8, 6)),
    "pool_padding": (_head(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, padding=1),
                           features=100),
                     "2 (MaxPool2d): it pads or uses ceil_mode; pools map without padding"),
    "avgpool_divisor": (_head(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                              nn.AvgPool2d(2, divisor_override=3), features=64),
                        "2 (AvgPool2d): it overrides the divisor; an average pool maps with "
                        "the window size"),
    "partial_flatten": (_head(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(2)),
                        "2 (Flatten): it flattens dimensions 2..-1; only flatten from "
                        "dimension 1 to the end is mapped"),
    "linear_without_flatten": (S(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Linear(6, 10)),
                               "2 (Linear): it reads a tensor of shape (4, 6, 6); flatten it "
                               "first (nn.Flatten())"),
    "relu_on_output": (S(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10),
                         nn.ReLU()),
                       "4 (ReLU): the network must end in a Conv or Linear layer without "
                       "activation: its output layer integrates without firing"),
    "residual_without_relu": (
        _Lambda(lambda s, x: s.fc(torch.flatten(s.d(torch.relu(s.c(x))) + torch.relu(s.c(x)),
                                                1))),
        "flatten (torch.flatten): it reads the residual sum add, which is not followed by a "
        "ReLU; every residual + must be"),
    "add_constant": (_Lambda(lambda s, x: s.fc(torch.flatten(torch.relu(s.c(x)) + 1, 1))),
                     "add (_operator.add): a residual + must add two tensors of the network (no "
                     "constants, no alpha)"),
    "view": (_Lambda(lambda s, x: s.fc(torch.relu(s.c(x)).view(2, -1))),
             "view (Tensor.view): reshapes are not mapped; use nn.Flatten() or "
             "torch.flatten(x, 1)"),
    "unknown_function": (_Lambda(lambda s, x: s.fc(torch.cat([torch.relu(s.c(x))], 1)
                                                   .flatten(1))),
                         f"cat (torch.cat): spikeforge has no layer for it (it maps "
                         f"{SUPPORTED})"),
    "tuple_output": (_Lambda(lambda s, x: (s.fc(torch.relu(s.c(x)).flatten(1)), x)),
                     "module (_Lambda): its forward returns more than one tensor; it must "
                     "return the logits"),
    "parameter_in_forward": (_Lambda(lambda s, x: s.fc(torch.relu(s.c(x) * s.c.weight.sum())
                                                       .flatten(1))),
                             "c_weight (get_attr): its forward reads a parameter or buffer "
                             "directly (c.weight); only modules' own parameters are mapped"),
    "untraceable": (_Lambda(lambda s, x: s.fc(torch.relu(s.c(x)).flatten(1)) if x.sum() > 0
                            else x),
                    "module (_Lambda): torch.fx cannot trace it (symbolically traced variables "
                    "cannot be used as inputs to control flow)"),
    "flatten_before_relu": (_Lambda(lambda s, x: s.fc(torch.relu(s.c(x)).flatten(1)
                                                      + s.c(x).flatten(1))),
                            "flatten_1 (Tensor.flatten): it flattens a value before its "
                            "activation; put a ReLU before it (a flatten maps onto spikes)"),
    "two_inputs": (_TwoInputs(), "module (_TwoInputs): its forward takes 2 tensors; the "
                                 "accelerator runs networks of one input"),
    "wrong_input_shape": (S(nn.Flatten(), nn.Linear(10, 10)),
                          "module (Sequential): it does not run on an input of shape (1, 8, 8) "
                          "(RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x64 and "
                          "10x10))"),
}


@pytest.mark.parametrize("case", list(_CASES))
def test_unmappable_module_refused(case):
    module, message, *example = _CASES[case]
    with pytest.raises(UnmappableModule) as info:
        map_module(module, example[0] if example else X)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_output_map_refused_before_training(tmp_path):
    lines = []
    module = S(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 10, 3))
    with pytest.raises(UnmappableModule) as info:
        from_torch(module, np.zeros((20, 1, 8, 8)), np.zeros(20, dtype=int),
                   out=tmp_path / "b.sfb", log=lines.append)
    assert str(info.value) == ("2 (Conv2d): the output layer must produce one value per class, "
                               "not a map of shape (10, 4, 4)")
    assert not lines and not (tmp_path / "b.sfb").exists()


def test_refused_before_training_logs_nothing(tmp_path):
    lines = []
    with pytest.raises(UnmappableModule):
        from_torch(_CASES["gelu"][0], np.zeros((20, 1, 8, 8)), np.zeros(20, dtype=int),
                   out=tmp_path / "b.sfb", log=lines.append)
    assert lines == [] and not (tmp_path / "b.sfb").exists()


class _Residual(nn.Module):
    """Everything the mapper takes: BN, bias-free conv, max/avg pools, residual +, dropout."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.c3 = nn.Conv2d(16, 16, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.b1(self.c1(x)))
        x = self.pool(torch.relu(self.b2(self.c2(x))))
        x = torch.relu(self.c3(x) + x)
        return self.fc(self.drop(torch.flatten(self.gap(x), 1)))


def test_mapping_of_a_residual_network():
    mapped = map_module(_Residual(), X)
    assert [(s["name"], s["type"]) for s in mapped.specs] == [
        ("c1", "conv2d"), ("c2", "conv2d"), ("pool", "maxpool2d"), ("c3", "conv2d"),
        ("add", "add"), ("gap", "avgpool2d"), ("flatten", "flatten"), ("fc", "linear")]
    specs = {s["name"]: s for s in mapped.specs}
    assert specs["c1"]["bn"] and specs["c2"]["bn"] and specs["c3"]["output"] == "current"
    assert specs["add"]["inputs"] == ["c3", "pool"] and specs["gap"]["kernel"] == 4


def test_from_torch_digits_writes_a_bundle(tmp_path):
    split = digits_split(test_fraction=DIGITS_SPLIT["test_fraction"], seed=DIGITS_SPLIT["seed"])
    torch.manual_seed(0)
    lines = []
    result = from_torch(_Residual(), split.x_train[:600], split.y_train[:600],
                        out=tmp_path / "r.sfb", epochs=4, raw_range=(0.0, 16.0),
                        log=lines.append, batch_size=32)
    network = golden.read_bundle(tmp_path / "r.sfb")
    assert result.bundle == tmp_path / "r.sfb" and network.name == "_Residual"
    assert [layer.type for layer in network.layers] == [
        "conv2d", "conv2d", "maxpool2d", "conv2d", "add", "avgpool2d", "flatten", "linear"]
    meta = network.metadata
    assert meta["conversion_loss_points"] == result.conversion_loss == pytest.approx(
        round(100 * (result.qrelu_accuracy - result.snn_accuracy), 2))
    assert meta["snn_accuracy"] == result.snn_accuracy
    assert meta["snn_calibration"]["kept"] in meta["snn_calibration"]["validation_accuracy"]
    assert result.fits and str(result.fits) == "fits"
    assert result.validation_images == 60 and lines[-1].startswith("[summary] _Residual:")
    predictions = golden.run(network, golden.quantize_input(split.x_test[:50],
                                                            network.input)).predictions
    assert np.mean(predictions == split.y_test[:50]) > 0.25   # trained, if briefly (chance: 0.1)


def test_from_torch_conv3d(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(64, 1, 4, 5, 5))
    y = (x[:, 0, :2].mean(axis=(1, 2, 3)) > 0).astype(int)
    module = S(nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.Flatten(),
               nn.Linear(400, 2))
    result = from_torch(module, x, y, out=tmp_path / "h.sfb", epochs=1, raw_range=(-1.0, 1.0),
                        log=lambda line: None, batch_size=16)
    layer = result.network.layers[0]
    assert layer.type == "conv3d" and tuple(layer.kernel) == (3, 3, 3)


def test_from_torch_bad_labels(tmp_path):
    with pytest.raises(ValueError, match=r"^the labels go up to 12, but the network has 10 "
                                         r"outputs$"):
        from_torch(_Residual(), np.zeros((20, 1, 8, 8)), np.full(20, 12),
                   out=tmp_path / "b.sfb", log=lambda line: None)


@pytest.mark.parametrize("keyword, value, message", [
    ("timesteps", 0, "timesteps must be a positive integer, not 0"),
    ("weight_bits", 9, "weight_bits must be an integer in 2..8, not 9"),
    ("weight_bits", 1, "weight_bits must be an integer in 2..8, not 1"),
    ("epochs", 0, "epochs must be a positive integer, not 0"),
    ("input_bits", 17, "input_bits must be an integer in 1..16, not 17"),
    ("raw_range", (1.0, 1.0), "raw_range must be (low, high) with low < high, not (1.0, 1.0)"),
])
def test_from_torch_bad_argument_refused(tmp_path, keyword, value, message):
    with pytest.raises(ValueError) as info:
        from_torch(_Residual(), np.zeros((20, 1, 8, 8)), np.zeros(20, dtype=int),
                   out=tmp_path / "b.sfb", log=lambda line: None, **{keyword: value})
    assert str(info.value) == message
    assert not (tmp_path / "b.sfb").exists()


def _run(argv, capsys):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


_MODEL = '''
from torch import nn


def small():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(512, 10))


def gelu():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.GELU(), nn.Flatten(),
                         nn.Linear(512, 10))


def not_a_module():
    return 3
'''


def test_train_custom_cli(tmp_path, capsys):
    model = tmp_path / "model.py"
    model.write_text(_MODEL)
    out = tmp_path / "c.sfb"
    status, text, err = _run(["train", "custom", "--model", f"{model}:small", "--dataset",
                              "digits", "--out", out, "--epochs", "1", "--train-limit", "300"],
                             capsys)
    assert status == 0, err
    assert text.startswith(f"wrote {out}: Sequential from {model}:small on digits")
    assert "ANN -> SNN loss" in text and "on the default accelerator" in text
    assert golden.read_bundle(out).metadata["recipe"] == "from-torch-qat-qrelu-conversion-v1"


@pytest.mark.parametrize("suffix, message", [
    (":gelu", "1 (GELU): only ReLU activations convert to IF neurons"),
    (":missing", "--model: {model} has no function 'missing'"),
    (":not_a_module", "--model: not_a_module() returned int, not a torch.nn.Module"),
    ("", "--model '{model}' is not FILE.py:FUNCTION"),
])
def test_train_custom_cli_refused(tmp_path, capsys, suffix, message):
    model = tmp_path / "model.py"
    model.write_text(_MODEL)
    status, text, err = _run(["train", "custom", "--model", f"{model}{suffix}", "--dataset",
                              "digits", "--out", tmp_path / "c.sfb"], capsys)
    assert (status, text) == (2, "")
    assert err == f"spikeforge: error: {message.format(model=model)}\n"
    assert not (tmp_path / "c.sfb").exists()


def test_train_custom_needs_model_and_dataset(tmp_path, capsys):
    status, _, err = _run(["train", "custom", "--out", tmp_path / "c.sfb"], capsys)
    assert status == 2 and err == ("spikeforge: error: train custom needs --model "
                                   "FILE.py:FUNCTION and --dataset mnist|digits|indian-pines\n")
    status, _, err = _run(["train", "digits-conv", "--dataset", "mnist", "--out",
                           tmp_path / "c.sfb"], capsys)
    assert status == 2 and err == ("spikeforge: error: --model and --dataset apply to train "
                                   "custom, not to digits-conv\n")
