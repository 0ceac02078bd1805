"""Energy model (golden/energy.py) on hand-computed tiny networks, and ``spikeforge energy``.

Every expected energy here is computed by hand from the constants of docs/energy.md and
operation counts worked out from the network below, not from the code under test."""

import json
import math

import numpy as np
import pytest

from spikeforge.golden import network_from_parts
from spikeforge.golden import run as golden_run
from spikeforge.golden.energy import DEFAULT_CONSTANTS, cnn_ops, energy_report, snn_ops
from spikeforge.tools.cli import main


def tiny():
    """(1, 2, 2) 8-bit -> conv 1x1 (weight 1, threshold 100, IF, subtract) -> flatten ->
    linear 4 -> 2 (4-bit weights, all non-zero), T = 2."""
    manifest = {
        "format": "spikeforge-bundle", "format_version": 1, "name": "tiny", "timesteps": 2,
        "membrane_bits": 16,
        "input": {"shape": [1, 2, 2], "bits": 8, "raw_min": 0.0, "raw_max": 255.0},
        "layers": [
            {"name": "conv", "type": "conv2d", "output": "spikes", "out_channels": 1,
             "kernel": [1, 1], "stride": [1, 1], "padding": [0, 0], "out_shape": [1, 2, 2],
             "weight_bits": 2, "neuron": {"threshold": 100, "reset": "subtract"}},
            {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [4]},
            {"name": "fc", "type": "linear", "output": "membrane", "out_features": 2,
             "out_shape": [2], "weight_bits": 4, "neuron": {}},
        ]}
    arrays = {"conv.weight": np.ones((1, 1, 1, 1), np.int8),
              "fc.weight": np.array([[1, -2, 3, -4], [5, 6, -7, 7]], np.int8)}
    return network_from_parts(manifest, arrays)


# Pixels 100, 0, 250, 50 with threshold 100: 2, 0, 2 and 1 spikes over T = 2 (250 fires at
# t = 1 leaving 150, then 400 fires again; 50 fires at t = 2 only).
IMAGE = np.array([[[[100, 0], [250, 50]]]])


def test_constants_scale_to_horowitz_8_bit():
    c = DEFAULT_CONSTANTS
    assert c.int_mult(32, 32) == 3.1 and c.int_add(32) == 0.1 and c.fp_mac == pytest.approx(4.6)
    # 8-bit: 3.1 / 16 and 0.1 / 4, within 0.01 pJ of Horowitz's 0.2 and 0.03 pJ.
    assert c.int_mult(8, 8) == pytest.approx(0.19375) and c.int_add(8) == pytest.approx(0.025)
    assert c.int_mult(4, 8) == pytest.approx(3.1 * 32 / 1024)


def test_op_counts_by_hand():
    network = tiny()
    assert cnn_ops(network) == {"conv": {"macs": 4, "adds": 0}, "flat": {"macs": 0, "adds": 0},
                                "fc": {"macs": 8, "adds": 0}}
    counts = snn_ops(network, golden_run(network, IMAGE))
    # 4 first-layer MACs (once per image); 5 spikes, each reaching both fc outputs.
    assert counts == {"macs": 4.0, "accumulates": 10.0, "spikes": 5.0,
                      "neuron_updates": float((4 + 2) * 2)}


def test_energies_by_hand():
    network = tiny()
    report = energy_report(network, golden_run(network, IMAGE), bits=6, pim_rows=9)
    energy = report["energy_pj"]
    assert energy["float_cnn"]["total"] == pytest.approx(12 * (3.7 + 0.9))
    # 6-bit CNN: a 6 x 6 multiply (3.1 * 36 / 1024) and a 32-bit add (0.1) per MAC.
    assert energy["quantized_cnn"]["total"] == pytest.approx(12 * (3.1 * 36 / 1024 + 0.1))
    # SNN: the first layer's 4 MACs are 2-bit weights x 8-bit pixels; 10 accumulates.
    first = 4 * (3.1 * 16 / 1024 + 0.1)
    assert energy["snn_mac"] == pytest.approx(
        {"total": first + 10 * 0.1, "first_layer": first, "synaptic": 1.0})
    # PIM: per MAC 8 bit-planes of a (2 + 4)-bit tree add and 1/9 of a
    # (2 + 8 + 4 + 1)-bit accumulator add.
    pim = 4 * 8 * (0.1 * 6 / 32 + 0.1 * 15 / 32 / 9)
    assert energy["snn_pim"]["first_layer"] == pytest.approx(pim)
    assert energy["snn_pim_analog"]["first_layer"] == pytest.approx(4 * 0.08)
    ratios = report["ratios"]
    assert ratios["float_cnn_vs_snn_mac"] == pytest.approx(12 * 4.6 / (first + 1.0))
    assert ratios["pim_energy_change"] == pytest.approx((pim + 1.0) / (first + 1.0) - 1)
    # Two membrane updates (an add and a compare, 16 bits) per neuron per timestep.
    assert report["neuron_updates_pj"] == pytest.approx(12 * 2 * 0.1 * 16 / 32)


def test_default_bits_are_the_widest_weights():
    network = tiny()
    report = energy_report(network, golden_run(network, IMAGE))
    assert report["bits"] == {"cnn": 4, "first_layer_weights": 2, "input": 8, "pim_rows": 9}
    assert report["energy_pj"]["quantized_cnn"]["total"] == pytest.approx(
        12 * (3.1 * 16 / 1024 + 0.1))


def test_cnn_ops_conv3d_pool_and_add():
    from random_networks import random_network
    manifest, arrays = random_network(286, "residual")
    network = network_from_parts(manifest, arrays)
    ops = cnn_ops(network)
    for layer in network.layers:
        want = {"macs": 0, "adds": 0}
        if layer.type in ("conv2d", "conv3d"):
            want["macs"] = int(np.prod(layer.out_shape)) * layer.in_shape[0] * math.prod(
                layer.kernel)
        elif layer.type == "add":
            want["adds"] = int(np.prod(layer.out_shape)) * len(layer.inputs)
        elif layer.type == "linear":
            want["macs"] = layer.out_shape[0] * layer.in_shape[0]
        elif layer.type.endswith("pool2d"):
            want["adds"] = int(np.prod(layer.out_shape)) * math.prod(layer.kernel)
        assert ops[layer.name] == want, layer.name


def test_cli_energy_json(capsys):
    status = main(["energy", "--dataset", "digits", "--images", "3", "--pes", "16", "--json"])
    out, err = capsys.readouterr()
    assert status == 0 and err == ""
    report = json.loads(out)
    assert report["images"] == 3 and report["pes"] == 16
    assert set(report["energy_pj"]) == {"float_cnn", "quantized_cnn", "snn_mac", "snn_pim",
                                        "snn_pim_analog"}
    mac, pim = report["delay"]["mac"], report["delay"]["pim"]
    assert report["ratios"]["pim_delay_change"] == pytest.approx(
        pim["cycles"] / mac["cycles"] - 1)
    assert report["ace_snn"]["vs_float_cnn"] == 560.6


def test_cli_energy_text(capsys):
    status = main(["energy", "--dataset", "digits", "--images", "2", "--bits", "6"])
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert status == 0 and lines[0].startswith("energy per inference")
    assert any(line.startswith("quantized CNN (6-bit)") for line in lines)
    assert lines[-1].startswith("PIM vs MAC first layer: energy ")


@pytest.mark.parametrize("argv, fragment", [
    (["energy", "--images", "0"], "not a positive number"),
    (["energy", "/no/such/bundle.sfb"], "bundle.sfb"),
])
def test_cli_energy_bad_input(argv, fragment, capsys):
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and fragment in err and err.count("\n") == 1
