"""``AcceleratorConfig``: validation, derived widths, the JSON manifest and ``fits``.

Every ``fits`` test builds a small network that exceeds one limit of an otherwise generous
config and pins the one reason it must give, with numbers computed here independently.
"""

import dataclasses
import json
from importlib import resources

import numpy as np
import pytest

from bundle_cases import base_bundle
from spikeforge.golden import network_from_parts, read_bundle
from spikeforge.rtl.config import AcceleratorConfig, FitReport, layer_positions

SPIKING = {"threshold": 10, "reset": "subtract"}
#: Every limit far above what the test networks need; each test lowers one.
ROOMY = dict(max_positions=1 << 16, max_in_channels=1 << 12, max_out_channels=1 << 12,
             max_feature_size=256, max_timesteps=1024, weight_depth=1 << 20,
             spike_memory_bits=1 << 24, psum_bits=48, membrane_bits=32, leak_multiplier=True)


# --------------------------------------------------------------------------- network builder

class Net:
    """Builds a chain of layers in bundle form; ``build()`` validates it into a Network."""

    def __init__(self, shape, *, bits=8, timesteps=4, membrane_bits=16):
        self.manifest = {
            "format": "spikeforge-bundle", "format_version": 1, "name": "net",
            "timesteps": timesteps, "membrane_bits": membrane_bits,
            "input": {"shape": list(shape), "bits": bits, "raw_min": 0.0, "raw_max": 1.0},
            "layers": []}
        self.arrays = {}
        self.shape = tuple(shape)

    def _add(self, obj, shape):
        obj.setdefault("output", "spikes")
        if obj["output"] == "spikes" and obj["type"] not in ("maxpool2d", "flatten"):
            obj.setdefault("neuron", dict(SPIKING))
        obj["out_shape"] = list(shape)
        self.manifest["layers"].append(obj)
        self.shape = tuple(shape)
        return self

    def conv(self, name, channels, *, kernel=3, stride=1, padding=1, weight=1, bias=None,
             weight_bits=8, **extra):
        c, h, w = self.shape
        out = (channels, (h + 2 * padding - kernel) // stride + 1,
               (w + 2 * padding - kernel) // stride + 1)
        self.arrays[f"{name}.weight"] = np.full((channels, c, kernel, kernel), weight, np.int8)
        obj = {"name": name, "type": "conv2d", "out_channels": channels,
               "kernel": [kernel] * 2, "stride": [stride] * 2, "padding": [padding] * 2,
               "weight_bits": weight_bits, **extra}
        if bias is not None:
            obj["bias_bits"] = 32
            self.arrays[f"{name}.bias"] = np.full(channels, bias, np.int32)
        return self._add(obj, out)

    def pool(self, name, kind, kernel, stride=None):
        c, h, w = self.shape
        stride = stride or kernel
        out = (c, (h - kernel) // stride + 1, (w - kernel) // stride + 1)
        return self._add({"name": name, "type": kind, "kernel": [kernel] * 2,
                          "stride": [stride] * 2}, out)

    def flatten(self):
        return self._add({"name": "flat", "type": "flatten"}, (int(np.prod(self.shape)),))

    def linear(self, name, features, *, weight=1, weight_bits=8, output="membrane", **extra):
        self.arrays[f"{name}.weight"] = np.full((features, self.shape[0]), weight, np.int8)
        obj = {"name": name, "type": "linear", "out_features": features,
               "weight_bits": weight_bits,
               "output": output, **extra}
        if output == "membrane":
            obj.setdefault("neuron", {})
        return self._add(obj, (features,))

    def build(self):
        return network_from_parts(self.manifest, self.arrays)


def small_net(**kw):
    return Net((1, 8, 8), **kw).conv("conv1", 4).flatten().linear("fc", 3).build()


def signed_bits(bound):
    """Smallest two's-complement width holding -bound .. bound (computed by search)."""
    bits = 1
    while (1 << (bits - 1)) - 1 < bound:
        bits += 1
    return bits


def reasons(network, **config):
    report = AcceleratorConfig(**{**ROOMY, **config}).fits(network)
    assert bool(report) is report.ok is (not report.reasons)
    return report.reasons


# --------------------------------------------------------------------------- construction

def test_init():
    config = AcceleratorConfig()
    assert (config.pes, config.taps_per_cycle, config.weight_bits, config.membrane_bits,
            config.psum_bits, config.max_positions, config.max_timesteps, config.leak_multiplier,
            config.clock_hz) == (64, 1, 8, 16, 24, 1024, 32, False, 125e6)
    assert (config.lanes, config.addr_bits, config.weight_addr_bits, config.channel_bits,
            config.coord_bits, config.timestep_bits, config.max_groups, config.group_bits,
            config.spike_words, config.spike_addr_bits) == (64, 10, 11, 10, 6, 5, 16, 4, 1024, 10)
    odd = AcceleratorConfig(pes=48, max_positions=1025, max_out_channels=48, max_timesteps=1,
                            spike_memory_bits=100, clock_hz=100_000_000)
    assert (odd.addr_bits, odd.max_groups, odd.group_bits, odd.timestep_bits, odd.spike_words,
            odd.spike_addr_bits) == (11, 1, 1, 1, 2, 1)
    assert odd.clock_hz == 1e8 and isinstance(odd.clock_hz, float)


def test_frozen_and_keyword_only():
    config = AcceleratorConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.pes = 4
    with pytest.raises(TypeError):
        AcceleratorConfig(64)


POSITIVE = [("taps_per_cycle", "Taps per cycle"),
            ("max_positions", "Maximum position count"),
            ("max_in_channels", "Maximum input channel count"),
            ("max_out_channels", "Maximum output channel count"),
            ("max_feature_size", "Maximum feature map size"),
            ("weight_depth", "Weight memory depth"), ("spike_memory_bits", "Spike memory size")]


@pytest.mark.parametrize("value", [0, -3, 1025, 2.0, "8", True, None])
def test_init_wrong_pes(value):
    # At most MAX_PES: a PE count no design is generated for is refused at once.
    with pytest.raises(TypeError, match=rf"^Number of PEs must be an integer in 1\.\.1024, not "
                                        rf"{value!r}$"):
        AcceleratorConfig(pes=value)


@pytest.mark.parametrize("field, what", POSITIVE)
@pytest.mark.parametrize("value", [0, -3, 2.0, "8", True, None])
def test_init_wrong_positive(field, what, value):
    with pytest.raises(TypeError, match=rf"^{what} must be a positive integer, not "
                                        rf"{value!r}$"):
        AcceleratorConfig(**{field: value})


@pytest.mark.parametrize("field, what, low, high, values", [
    ("weight_bits", "Weight width", 2, 8, [1, 9, 8.0]),
    ("membrane_bits", "Membrane width", 2, 32, [1, 33, False]),
    ("psum_bits", "Partial-sum width", 2, 64, [1, 65, "24"]),
    ("max_timesteps", "Maximum timestep count", 1, 1024, [0, 1025, 32.0]),
])
def test_init_wrong_width(field, what, low, high, values):
    for value in values:
        with pytest.raises(TypeError, match=rf"^{what} must be an integer in {low}\.\.{high}, "
                                            rf"not {value!r}$"):
            AcceleratorConfig(**{field: value})


def test_init_wrong_psum_bits_below_weight_bits():
    with pytest.raises(ValueError, match=r"^Partial-sum width must be at least the weight "
                                         r"width \(8\), not 6$"):
        AcceleratorConfig(psum_bits=6)


def test_init_wrong_spike_memory_bits_below_one_word():
    with pytest.raises(ValueError, match=r"^Spike memory must hold at least one 64-bit word, "
                                         r"not 63 bits$"):
        AcceleratorConfig(spike_memory_bits=63)


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_init_wrong_leak_multiplier(value):
    with pytest.raises(TypeError, match=rf"^Leak multiplier must be a bool, not {value!r}$"):
        AcceleratorConfig(leak_multiplier=value)


@pytest.mark.parametrize("param, what", [("weight_packing", "Weight packing"),
                                         ("space_to_depth", "Space-to-depth"),
                                         ("current_shifter", "Current shifter")])
@pytest.mark.parametrize("value", [1, "yes", None])
def test_init_wrong_mapping_flag(param, what, value):
    with pytest.raises(TypeError, match=rf"^{what} must be a bool, not {value!r}$"):
        AcceleratorConfig(**{param: value})


@pytest.mark.parametrize("taps", [2, 3])
def test_init_wrong_taps_per_cycle(taps):
    # The config refuses what the PE array cannot build, before anything is generated.
    with pytest.raises(ValueError, match=rf"^Taps per cycle must be 1 \(the multi-tap variant "
                                         rf"with interleaved sub-banks is planned\), not {taps}$"):
        AcceleratorConfig(taps_per_cycle=taps)


@pytest.mark.parametrize("bits", [2, 5, 7])
def test_init_wrong_weight_packing_width(bits):
    with pytest.raises(ValueError, match=rf"^Weight packing needs an even weight width of at "
                                         rf"least 4, not {bits}$"):
        AcceleratorConfig(weight_bits=bits, weight_packing=True)


def test_tap_weight_address_has_the_half_row_bit():
    assert AcceleratorConfig(weight_depth=4096).tap_weight_addr_bits == 12
    assert AcceleratorConfig(weight_depth=4096, weight_packing=True).tap_weight_addr_bits == 13


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan"), "125e6", True])
def test_init_wrong_clock_hz(value):
    with pytest.raises(TypeError, match=r"^Clock frequency must be a positive number of Hz, "
                                        rf"not {value!r}$"):
        AcceleratorConfig(clock_hz=value)


# --------------------------------------------------------------------------- JSON manifest

def test_json_round_trip():
    config = AcceleratorConfig(pes=16, psum_bits=20, max_positions=300, weight_depth=777,
                               leak_multiplier=True, clock_hz=50e6, spike_memory_bits=4096,
                               current_shifter=True)
    obj = config.to_json()
    assert obj["format"] == "spikeforge-accelerator" and obj["format_version"] == 1
    assert AcceleratorConfig.from_json(json.loads(json.dumps(obj))) == config
    assert AcceleratorConfig.from_json(json.dumps(obj)) == config
    assert AcceleratorConfig.from_json(AcceleratorConfig().to_json()) == AcceleratorConfig()


@pytest.mark.parametrize("change, error, message", [
    (lambda o: o.update(format="other"), ValueError, r"^Not an accelerator config manifest"),
    (lambda o: o.update(format_version=2), ValueError,
     r"^Accelerator config format version must be 1, not 2$"),
    (lambda o: o.pop("weight_depth"), ValueError,
     r"^Accelerator config manifest is missing the field 'weight_depth'$"),
    (lambda o: o.update(lanes=3), ValueError,
     r"^Accelerator config manifest has an unknown field 'lanes'; the known fields are "
     r"format, format_version, pes, .*, clock_hz$"),
    (lambda o: o.update(pes=0), TypeError, r"^Number of PEs must be an integer in 1\.\.1024, "
                                           r"not 0$"),
])
def test_from_json_wrong(change, error, message):
    obj = AcceleratorConfig().to_json()
    change(obj)
    with pytest.raises(error, match=message):
        AcceleratorConfig.from_json(obj)


# --------------------------------------------------------------------------- fits

def test_fits_shipped_bundle():
    with resources.as_file(resources.files("spikeforge") / "models" / "digits_snn.sfb") as path:
        network = read_bundle(path)
    report = AcceleratorConfig().fits(network)
    assert report and report == FitReport(ok=True, reasons=())
    assert str(report) == "fits"


def test_fits_wrong_network():
    with pytest.raises(TypeError, match=r"^fits\(\) needs a spikeforge.golden.Network, "
                                        r"not 'net'$"):
        AcceleratorConfig().fits("net")


def test_fits_roomy_config_accepts_small_net():
    assert reasons(small_net()) == ()


def test_fits_timesteps():
    assert reasons(small_net(timesteps=40), max_timesteps=32) == (
        "the network 'net' runs 40 timesteps, the config allows 32 (8 over)",)


def test_fits_membrane_bits():
    assert reasons(small_net(membrane_bits=20), membrane_bits=16) == (
        "the network 'net' needs 20-bit membranes, the config has 16 (4 bits over)",)
    assert reasons(small_net(membrane_bits=8), membrane_bits=16) == ()  # membrane_narrow


def _wide_output_net(membrane_bits=4, output_bits=8, classes=3):
    return Net((1, 8, 8), membrane_bits=membrane_bits).conv(
        "conv1", 4, neuron={"threshold": 3, "reset": "zero"}).flatten().linear(
        "fc", classes, neuron={"membrane_bits": output_bits}).build()


@pytest.mark.parametrize("value, error, message", [
    (4, ValueError, r"^Output membrane width must be wider than the membrane width \(4\) or "
                    r"None, not 4$"),
    (33, TypeError, r"^Output membrane width must be an integer in 2\.\.32, not 33$"),
    ("8", TypeError, r"^Output membrane width must be an integer in 2\.\.32, not '8'$"),
])
def test_init_wrong_output_membrane_bits(value, error, message):
    with pytest.raises(error, match=message):
        AcceleratorConfig(membrane_bits=4, output_membrane_bits=value)


def test_init_wrong_output_membrane_rows():
    with pytest.raises(TypeError, match=r"^Output membrane rows must be a positive integer, "
                                        r"not 0$"):
        AcceleratorConfig(output_membrane_rows=0)


def test_output_membranes_widths():
    one = AcceleratorConfig(membrane_bits=4)
    assert (one.separate_output_membranes, one.core_membrane_bits) == (False, 4)
    two = AcceleratorConfig(membrane_bits=4, output_membrane_bits=8)
    assert (two.separate_output_membranes, two.core_membrane_bits) == (True, 8)


def test_fits_wider_output_membranes():
    # A 4-bit network whose output layer sums at 8 bits: a 4-bit membrane memory alone
    # cannot hold it, one with an 8-bit output memory (or an 8-bit membrane memory) can.
    net = _wide_output_net()
    assert reasons(net, membrane_bits=4) == (
        "the output layer of 'net' needs 8-bit membranes, the config has 4 (4 bits over)",)
    assert reasons(net, membrane_bits=4, output_membrane_bits=8) == ()
    assert reasons(net, membrane_bits=8) == ()
    assert reasons(net, membrane_bits=4, output_membrane_bits=6) == (
        "the output layer of 'net' needs 8-bit membranes, the config has 6 (2 bits over)",)
    # 20 classes on 4 PEs are 5 groups of one position: 5 output rows.
    assert reasons(_wide_output_net(classes=20), pes=4, membrane_bits=4,
                   output_membrane_bits=8, output_membrane_rows=4) == (
        "layer 'fc' keeps 5 output membrane rows, the config has 4 (1 over)",)


def test_fits_weight_bits():
    report = AcceleratorConfig(**{**ROOMY, "weight_bits": 7}).fits(small_net())
    assert not report
    assert report.reasons == ("layer 'conv1' needs 8-bit weights, the config has 7 (1 bit over)",
                              "layer 'fc' needs 8-bit weights, the config has 7 (1 bit over)")
    assert str(report).startswith("does not fit: layer 'conv1' needs 8-bit weights")


def test_fits_psum_bits_first_layer_reads_pixels_later_layers_spikes():
    # conv1 reads 8-bit pixels: 9 taps x 127 x 255 + bias 1000; conv2 reads spikes (0/1):
    # 64 channels x 9 taps x |-128|.
    network = (Net((1, 8, 8)).conv("conv1", 64, weight=127, bias=1000)
               .conv("conv2", 2, weight=-128).flatten().linear("fc", 2).build())
    conv1, conv2 = 9 * 127 * 255 + 1000, 64 * 9 * 128
    assert (signed_bits(conv1), signed_bits(conv2)) == (20, 18)
    assert reasons(network, psum_bits=17) == (
        f"layer 'conv1' needs 20-bit partial sums for its worst-case current {conv1}, the config "
        f"has 17 (3 bits over)",
        f"layer 'conv2' needs 18-bit partial sums for its worst-case current {conv2}, the config "
        f"has 17 (1 bit over)")
    assert reasons(network, psum_bits=20) == ()


def test_fits_psum_bits_avgpool():
    # 1-bit pixels and weights 1: conv1 needs 2 bits; the 3x3 average pool counts up to 9
    # spikes (5 bits); fc sums 4 spikes of weight 1 (4 bits).
    network = (Net((1, 6, 6), bits=1).conv("conv1", 1, kernel=1, padding=0, weight_bits=2)
               .pool("pool", "avgpool2d", 3).flatten().linear("fc", 2, weight_bits=2).build())
    assert reasons(network, weight_bits=2, psum_bits=4) == (
        "layer 'pool' needs 5-bit partial sums for its worst-case current 9, the config has 4 "
        "(1 bit over)",)


def test_fits_positions():
    network = Net((1, 42, 42)).conv("conv1", 2).conv("conv2", 2, stride=2).flatten() \
        .linear("fc", 2).build()
    assert (42 * 42, 21 * 21) == (1764, 441)
    assert reasons(network, max_positions=1024) == (
        "layer 'conv1' needs 1764 partial-sum positions, the config has 1024 (740 over)",)


def test_fits_channels():
    network = Net((1, 3, 3)).conv("conv1", 20).conv("conv2", 4).flatten().linear("fc", 2) \
        .build()
    assert reasons(network, max_in_channels=16, max_out_channels=16) == (
        "layer 'conv1' has 20 output channels, the config allows 16 (4 over)",
        "layer 'conv2' has 20 input channels, the config allows 16 (4 over)",
        "layer 'fc' has 36 input features, the config allows 16 (20 over)")


def test_fits_feature_size():
    network = Net((1, 40, 30)).conv("conv1", 2).pool("mp", "maxpool2d", 2).flatten() \
        .linear("fc", 2).build()
    assert reasons(network, max_feature_size=32) == (
        "layer 'conv1' has an input map of 40x30, the config allows 32 per side (8 over)",
        "layer 'conv1' has an output map of 40x30, the config allows 32 per side (8 over)",
        "layer 'mp' has an input map of 40x30, the config allows 32 per side (8 over)")


def test_fits_weight_rows():
    network = (Net((3, 8, 8)).conv("conv1", 70).conv("conv2", 8)
               .pool("pool", "avgpool2d", 2).flatten().linear("fc", 10).build())
    config = AcceleratorConfig(**{**ROOMY, "pes": 64})
    # Rows per docs/accelerator.md: groups x C_in x K_h x K_w (linear: groups x N_in).
    rows = {"conv1": 2 * 3 * 9, "conv2": 1 * 70 * 9, "pool": 1 * 8 * 4, "fc": 1 * 8 * 4 * 4}
    assert [config.weight_rows(layer) for layer in network.layers] == \
        [rows["conv1"], rows["conv2"], rows["pool"], 0, rows["fc"]]
    assert sum(rows.values()) == 844
    assert reasons(network, weight_depth=800) == (
        "the weight memory needs 844 rows (conv1 54, conv2 630, pool 32, fc 128), the config "
        "has 800 (44 over)",)
    assert reasons(network, weight_depth=844) == ()


def test_fits_spike_bitmap():
    network = Net((1, 8, 8), timesteps=4).conv("conv1", 70).conv("conv2", 8) \
        .pool("mp", "maxpool2d", 2).flatten().linear("fc", 2).build()
    # conv1: 4 timesteps x 64 positions x 2 groups x 64 lanes; 20000 bits hold 312 words.
    need, usable = 4 * 64 * 2 * 64, (20000 // 64) * 64
    assert (need, usable) == (32768, 19968)
    assert [layer_positions(layer) for layer in network.layers] == [64, 64, 16, 1, 1]
    assert reasons(network, pes=64, spike_memory_bits=20000) == (
        "layer 'conv1' needs 32768 spike-bitmap bits (4 timesteps x 64 positions x 2 groups x "
        "64 lanes), the config has 19968 (12800 over)",)
    assert reasons(network, pes=64, spike_memory_bits=32768) == ()


def test_fits_mul_leak_needs_multiplier():
    neuron = {**SPIKING, "leak": {"kind": "mul", "factor": 3, "frac_bits": 2}}
    network = Net((1, 4, 4)).conv("conv1", 2, neuron=neuron).flatten().linear("fc", 2).build()
    assert reasons(network, leak_multiplier=False) == (
        "layer 'conv1' uses a multiplicative leak, but the config has no leak multiplier "
        "(leak_multiplier=False)",)
    assert reasons(network, leak_multiplier=True) == ()


def test_fits_current_shift_needs_shifter():
    network = Net((1, 4, 4)).conv("conv1", 2, neuron={**SPIKING, "current_shift": 3}) \
        .flatten().linear("fc", 2).build()
    assert reasons(network) == (
        "layer 'conv1' shifts its current by 3 bits, but the config has no current shifter "
        "(current_shifter=False)",)
    assert reasons(network, current_shifter=True) == ()


def test_fits_accepts_residual_add():
    # Residual adds run on the RTL (tests/test_rtl_residual.py has their own fit reasons).
    network = network_from_parts(*base_bundle())
    assert not [r for r in reasons(network, spike_bitmaps=4) if "'res'" in r]


def test_fits_accepts_conv3d():
    manifest = {
        "format": "spikeforge-bundle", "format_version": 1, "name": "cube", "timesteps": 2,
        "membrane_bits": 8, "input": {"shape": [1, 2, 4, 4], "bits": 4, "raw_min": 0.0,
                                      "raw_max": 1.0},
        "layers": [
            {"name": "c3", "type": "conv3d", "output": "spikes", "out_channels": 2,
             "kernel": [2, 1, 1], "stride": [1, 1, 1], "padding": [0, 0, 0],
             "out_shape": [2, 1, 4, 4], "weight_bits": 4, "neuron": SPIKING},
            {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [32]},
            {"name": "fc", "type": "linear", "output": "membrane", "out_features": 2,
             "out_shape": [2], "weight_bits": 4, "neuron": {}},
        ]}
    arrays = {"c3.weight": np.ones((2, 1, 2, 1, 1), np.int8),
              "fc.weight": np.ones((2, 32), np.int8)}
    # conv3d runs on the RTL (tests/test_rtl_conv3d.py).
    assert reasons(network_from_parts(manifest, arrays)) == ()


def test_fits_stride_limit_of_the_tap_generator():
    network = Net((1, 24, 24)).conv("conv1", 2, kernel=8, stride=8, padding=0) \
        .conv("conv2", 2, kernel=3, stride=7, padding=0).flatten().linear("fc", 2).build()
    assert reasons(network) == (
        "layer 'conv1' has stride 8, the tap generator handles at most 7 (1 over)",)


def test_memory_bits_counts_weights_biases_and_membranes_at_their_widths():
    # conv 2@3x3 (pad 0) on 1x4x4: 18 weights x 4 bits, 2 biases x 32 bits, 2x2x2 membranes;
    # max-pool and flatten hold none; fc 2 on 2 features: 4 weights x 3 bits, 2 membranes.
    network = Net((1, 4, 4), membrane_bits=5).conv("conv1", 2, padding=0, weight_bits=4,
                                                   bias=1) \
        .pool("mp", "maxpool2d", 2).flatten().linear("fc", 2, weight_bits=3).build()
    assert network.memory_bits() == {"weights": 18 * 4 + 4 * 3, "biases": 2 * 32,
                                     "membranes": (8 + 2) * 5}
