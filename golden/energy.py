"""Per-inference compute energy from operation counts, with 45 nm per-operation figures.

The model of the ACE-SNN line of papers (Datta et al.; ``docs/energy.md`` states every
constant and its source): energy is the number of arithmetic operations times the energy of
one operation at 45 nm (Horowitz, ISSCC 2014). Memory traffic, the neuron updates' control
and idle power are outside it, as in those papers; it compares architectures, it is not a
board measurement. Five estimates of one network:

* ``float_cnn``: the iso-architecture CNN in fp32, every multiply-accumulate of every layer
  (dense, padding taps included) at ``fp_mult + fp_add``, pooling and residual additions at
  ``fp_add``;
* ``quantized_cnn``: the same CNN with ``bits``-bit weights and activations: a ``bits x bits``
  integer multiply plus an accumulator add per MAC, a ``bits``-bit add per pooling or
  residual addition;
* ``snn_mac``: the spiking network on digital hardware with a multiplier first layer: the
  direct-encoded layer's MACs (once per image, zero weights skipped: the golden model's
  ``first_layer_macs``) as ``weight_bits x input_bits`` multiplies plus accumulator adds, and
  every later synaptic operation (the golden ``synaptic_ops``: one per non-zero weight a
  spike reaches, one per avg-pool window, residual term) as one accumulator add;
* ``snn_pim``: the same with our digital-PIM first layer: per first-layer MAC ``input_bits``
  gated adds in the adder tree (``weight_bits + ceil(log2(rows))`` bits) and a share of the
  shift-accumulate (``input_bits`` adds of the engine's accumulator per chunk of ``rows``);
* ``snn_pim_analog``: ACE-SNN's own analog SRAM PIM figure for reference: ``e_blp`` per
  in-memory accumulation, one per first-layer MAC.

Integer energies scale with width from the 32-bit figures: a multiply as the product of
the operand widths (``int_mult_32 * a * b / 32**2``), an add linearly (``int_add_32 * b /
32``). At 8 bits this gives 0.19 pJ and 0.025 pJ, Horowitz's 8-bit figures (0.2 and 0.03 pJ).
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["EnergyConstants", "DEFAULT_CONSTANTS", "cnn_ops", "snn_ops", "energy_report",
           "ACE_SNN"]

#: ACE-SNN's headline numbers (Datta et al., Front. Neurosci. 2022, abstract): average
#: energy of the SNN vs the iso-architecture fp32 CNN and 6-bit CNN, and the PIM first
#: layer's improvement in energy, delay and energy-delay product.
ACE_SNN = {"vs_float_cnn": 560.6, "vs_6bit_cnn": 44.8, "pim_energy": -0.30,
           "pim_delay": -0.07, "pim_edp": -0.38}


@dataclass(frozen=True)
class EnergyConstants:
    """Per-operation energies in pJ (45 nm, 0.9 V) and the accumulator width.

    Members
    -------
    fp_mult_32, fp_add_32 : float
        fp32 multiply 3.7 pJ and add 0.9 pJ (Horowitz ISSCC'14).
    int_mult_32, int_add_32 : float
        32-bit integer multiply 3.1 pJ and add 0.1 pJ (Horowitz ISSCC'14); ACE-SNN's
        ``E_MAC``/``E_AC`` reference.
    e_blp : float
        0.08 pJ per analog in-memory accumulation of ACE-SNN's SRAM PIM.
    accumulator_bits : int
        Width of every accumulator add (32: ACE-SNN's ``E_AC`` is a 32-bit add).
    """

    fp_mult_32: float = 3.7
    fp_add_32: float = 0.9
    int_mult_32: float = 3.1
    int_add_32: float = 0.1
    e_blp: float = 0.08
    accumulator_bits: int = 32

    def int_mult(self, a_bits, b_bits):
        """An ``a x b``-bit integer multiply: area (and energy) grow with ``a * b``."""
        return self.int_mult_32 * a_bits * b_bits / 32 ** 2

    def int_add(self, bits):
        """A ``bits``-bit integer add: a ripple adder grows with its width."""
        return self.int_add_32 * bits / 32

    @property
    def fp_mac(self):
        return self.fp_mult_32 + self.fp_add_32

    @property
    def accumulate(self):
        return self.int_add(self.accumulator_bits)


DEFAULT_CONSTANTS = EnergyConstants()


def cnn_ops(network):
    """Dense operations of the iso-architecture CNN: ``{layer: {"macs": m, "adds": a}}``.

    conv2d/conv3d: ``out_elements * C_in * prod(kernel)`` MACs (padding taps included, as
    FLOP counts usually are); linear: ``out * in``; avg-pool and max-pool: ``prod(kernel)``
    adds (compares) per output; a residual add: one add per input per element; flatten
    nothing.
    """
    ops = {}
    for layer in network.layers:
        macs = adds = 0
        out = int(np.prod(layer.out_shape))
        if layer.type in ("conv2d", "conv3d"):
            macs = out * layer.in_shape[0] * int(math.prod(layer.kernel))
        elif layer.type == "linear":
            macs = out * layer.in_shape[0]
        elif layer.type in ("avgpool2d", "maxpool2d"):
            adds = out * int(math.prod(layer.kernel))
        elif layer.type == "add":
            adds = out * len(layer.inputs)
        ops[layer.name] = {"macs": macs, "adds": adds}
    return ops


def snn_ops(network, golden):
    """Mean per-image operation counts of a golden run: first-layer MACs (``macs``),
    synaptic accumulates (``accumulates``), spikes, and neuron updates (every neuron of
    every neuron layer, every timestep)."""
    images = len(golden.predictions)
    synaptic = sum(int(v.sum()) for v in golden.synaptic_ops.values())
    updates = sum(layer.neurons for layer in network.layers
                  if layer.neuron is not None and layer.output != "current")
    return {"macs": float(golden.first_layer_macs.sum()) / images,
            "accumulates": synaptic / images,
            "spikes": golden.total_spikes / images,
            "neuron_updates": float(updates * network.timesteps)}


def _first_layer_bits(network):
    layers = [layer for layer in network.layers if layer.is_synaptic and layer.is_direct_encoded]
    return max((layer.weight_bits for layer in layers), default=8), network.input.bits


def energy_report(network, golden, *, bits=None, pim_rows=9, constants=DEFAULT_CONSTANTS):
    """Energy per inference (pJ) of the five estimates and the ratios ACE-SNN reports.

    Parameters
    ----------
    network : golden.Network
    golden : golden.GoldenResult
        ``golden.run(network, images)``: its op counts, averaged over the images.
    bits : int, optional
        Width of the quantized CNN's weights and activations; default the network's widest
        weights.
    pim_rows : int
        Taps the PIM block reduces at once (its adder tree's inputs).
    constants : EnergyConstants

    Returns
    -------
    dict
        ``constants``, ``ops`` (CNN and SNN counts), ``energy_pj`` (per estimate, with a
        ``first_layer``/``synaptic``/``other`` breakdown for the SNNs) and ``ratios``
        (``float_cnn / snn_mac``, ``quantized_cnn / snn_mac``, the PIM's energy change).
    """
    c = constants
    weight_bits, input_bits = _first_layer_bits(network)
    bits = bits or max(layer.weight_bits for layer in network.layers if layer.is_synaptic)
    cnn = cnn_ops(network)
    macs = sum(v["macs"] for v in cnn.values())
    adds = sum(v["adds"] for v in cnn.values())
    snn = snn_ops(network, golden)

    float_cnn = macs * c.fp_mac + adds * c.fp_add_32
    quantized_cnn = macs * (c.int_mult(bits, bits) + c.accumulate) + adds * c.int_add(bits)
    synaptic = snn["accumulates"] * c.accumulate
    first_mac = snn["macs"] * (c.int_mult(weight_bits, input_bits) + c.accumulate)
    tree_bits = weight_bits + math.ceil(math.log2(pim_rows)) if pim_rows > 1 else weight_bits
    engine_bits = weight_bits + input_bits + math.ceil(math.log2(pim_rows + 1)) + 1
    per_pim_mac = input_bits * (c.int_add(tree_bits) + c.int_add(engine_bits) / pim_rows)
    first_pim = snn["macs"] * per_pim_mac
    first_analog = snn["macs"] * c.e_blp

    def snn_row(first):
        return {"total": first + synaptic, "first_layer": first, "synaptic": synaptic}

    energy = {
        "float_cnn": {"total": float_cnn},
        "quantized_cnn": {"total": quantized_cnn, "bits": bits},
        "snn_mac": snn_row(first_mac),
        "snn_pim": snn_row(first_pim),
        "snn_pim_analog": snn_row(first_analog),
    }
    mac_total = energy["snn_mac"]["total"]
    ratios = {
        "float_cnn_vs_snn_mac": float_cnn / mac_total if mac_total else math.inf,
        "quantized_cnn_vs_snn_mac": quantized_cnn / mac_total if mac_total else math.inf,
        "pim_energy_change": energy["snn_pim"]["total"] / mac_total - 1 if mac_total else 0.0,
        "analog_pim_energy_change": (energy["snn_pim_analog"]["total"] / mac_total - 1
                                     if mac_total else 0.0),
    }
    # Outside the totals (as in ACE-SNN): the membrane add and threshold compare of every
    # neuron at every timestep, reported so that their weight is visible.
    updates = snn["neuron_updates"] * 2 * c.int_add(network.membrane_bits)
    return {"constants": asdict(c), "bits": {"cnn": bits, "first_layer_weights": weight_bits,
                                             "input": input_bits, "pim_rows": pim_rows},
            "ops": {"cnn_macs": macs, "cnn_adds": adds, **snn},
            "energy_pj": energy, "neuron_updates_pj": updates, "ratios": ratios,
            "ace_snn": dict(ACE_SNN)}
