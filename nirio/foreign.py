"""Reading a NIR graph that spikeforge did not write, from NIR's node equations alone.

Time is one Euler step per timestep. Under that reading, and with the input entering each
step with weight one (``r * dt / tau = 1``, snnTorch's convention, so ``dt = tau / r``):

* ``IF(r=1, v_reset=0)`` and ``LIF(tau=inf, r=inf, v_leak=0, v_reset=0)`` (snnTorch's
  ``beta = 1``) are the contract's IF with reset to zero; ``v > v_threshold`` on an integer
  membrane is ``V >= floor(v_threshold) + 1``;
* a finite ``LIF`` decays by ``beta = 1 - 1/r`` without rounding, which no contract leak
  reproduces: refused, or with ``approximate_leak`` rounded to the nearest contract leak;
* ``CubaLIF`` maps like ``LIF`` only when its synaptic filter is instantaneous (``w_in = 1``);
* ``I(r=1)`` / ``LI`` feeding the ``Output`` are the non-spiking output layer; a spiking
  neuron feeding the ``Output`` gets an appended counting layer (identity weights), reported;
* ``Conv2d`` / ``Affine`` / ``Linear`` / ``SumPool2d`` + a neuron are one layer; ``Conv1d``
  maps as a conv2d of kernel ``(1, k)`` on maps *lifted* from ``(C, L)`` to ``(C, 1, L)``
  (the network input too, reported), until a ``Flatten`` ends them;
  ``SumPool2d`` + ``Threshold(0 <= t < 1)`` is a max-pool; ``AvgPool2d`` folds only into a
  directly following IF; ``Flatten`` is a flatten; ``Scale`` nodes and fan-in into a neuron
  are a residual add.

Everything else is refused with the node's name and the reason (:class:`NIRError`).
"""

import math
import re

import numpy as np

from spikeforge.golden.manifest import BIAS_BITS, MEMBRANE_BITS, WEIGHT_BITS
from spikeforge.golden.network import int_range

from .common import NIRError, as_array, require_nir

__all__ = ["ForeignReader"]

_SYNAPTIC = ("Conv1d", "Conv2d", "Affine", "Linear", "SumPool2d", "AvgPool2d")
_NEURONS = ("IF", "LIF", "CubaLIF", "I", "LI")
#: The multiplicative leak an approximated decay is rounded to: ``(V * f) >> 16``.
_APPROXIMATE_FRAC_BITS = 16
_NAME_RE = re.compile(r"[^A-Za-z0-9_]")
#: A scaled parameter this close to an integer counts as one: float32 parameters carry about
#: seven significant digits, so a smaller residue is the storage's, not the network's.
_EXACT_STEP = 1e-6


def _bits_for(values, low_bits):
    """Fewest signed bits (at least ``low_bits``) that hold every integer of ``values``."""
    bits = low_bits
    while values.size and not (int_range(bits)[0] <= int(values.min())
                               and int(values.max()) <= int_range(bits)[1]):
        bits += 1
    return bits


def _quantization_step(weight, bias, bits):
    """``(step, largest rounding)`` putting ``weight`` on signed ``bits``-bit integers: the
    finest step ``peak / m`` (``m <= 2**(bits-1) - 1``) that leaves every weight and bias an
    integer (rounding 0), else ``peak / (2**(bits-1) - 1)`` with the rounding it costs."""
    peak = float(np.abs(weight).max(initial=0)) or 1.0
    top = int_range(bits)[1]
    values = np.concatenate([weight.ravel(), bias.ravel()])
    for levels in range(top, 0, -1):
        step = peak / levels
        error = float(np.abs(values / step - np.rint(values / step)).max(initial=0))
        if error <= _EXACT_STEP:
            return step, 0.0
    step = peak / top
    return step, float(np.abs(values / step - np.rint(values / step)).max(initial=0))


def _pair(value):
    return [int(v) for v in np.broadcast_to(as_array(value), 2)]


class ForeignReader:
    """Turns one ``nir.NIRGraph`` into manifest layers and arrays (see the module docstring)."""

    def __init__(self, graph, *, weight_bits=None, approximate_leak=False):
        self.nir = require_nir()
        self.graph = graph
        self.weight_bits = weight_bits
        self.approximate_leak = approximate_leak
        self.layers, self.arrays, self.notes = [], {}, []
        self.value = {}       # node -> ("pixels"|"spikes"|"current"|"synapse", layer name)
        self.lifted = set()   # nodes whose (C, L) NIR tensor is a (C, 1, L) contract map
        self.names = set()
        self.successors = {name: [] for name in graph.nodes}
        self.predecessors = {name: [] for name in graph.nodes}
        for source, target in graph.edges:
            self.successors[source].append(target)
            self.predecessors[target].append(source)

    # ----------------------------------------------------------------- helpers

    def _fail(self, node, reason):
        raise NIRError(f"node {node!r}: {reason}")

    def _type(self, node):
        return type(self.graph.nodes[node]).__name__

    def _uniform(self, node, field):
        values = as_array(getattr(self.graph.nodes[node], field))
        if values.size == 0 or np.any(values != values.flat[0]):
            self._fail(node, f"{field} differs between neurons; the contract has one value per "
                             f"layer")
        return float(values.flat[0])

    def _layer_name(self, node):
        name = _NAME_RE.sub("_", node)
        name = name if re.match(r"[A-Za-z_]", name) and name != "input" else f"n{name}"
        while name in self.names:
            name += "_"
        self.names.add(name)
        return name

    def _order(self):
        """Nodes in topological order; a cycle (a recurrent edge) is refused."""
        pending = {name: len(sources) for name, sources in self.predecessors.items()}
        ready = [name for name, count in pending.items() if count == 0]
        order = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for target in self.successors[name]:
                pending[target] -= 1
                if pending[target] == 0:
                    ready.append(target)
        if len(order) != len(self.graph.nodes):
            node = next(name for name in self.graph.nodes if name not in order)
            self._fail(node, "it is on a recurrent edge (a cycle in the graph); the integer "
                             "contract has no recurrence")
        return order

    # ----------------------------------------------------------------- reading

    def read(self):
        """Return ``(layers, arrays, notes)``: manifest layer entries, their arrays, and the
        roundings and additions made."""
        nir = self.nir
        for name, node in self.graph.nodes.items():
            if isinstance(node, nir.NIRGraph):
                self._fail(name, "nested subgraphs (snnTorch's recurrent layers) have no "
                                 "spikeforge form; the contract has no recurrence")
        inputs = [n for n, node in self.graph.nodes.items() if isinstance(node, nir.Input)]
        outputs = [n for n, node in self.graph.nodes.items() if isinstance(node, nir.Output)]
        if len(inputs) != 1 or len(outputs) != 1:
            raise NIRError(f"the graph has {len(inputs)} Input and {len(outputs)} Output nodes; "
                           f"spikeforge reads graphs with exactly one of each")
        shape = [int(v) for v in np.asarray(self.graph.nodes[inputs[0]].input_type["input"])]
        if len(shape) == 2 and "Conv1d" in [self._type(t) for t in self.successors[inputs[0]]]:
            self.lifted.add(inputs[0])
            self.notes.append(f"the graph's ({shape[0]}, {shape[1]}) input is read as "
                              f"({shape[0]}, 1, {shape[1]}): Conv1d maps as a conv2d")
            shape = [shape[0], 1, shape[1]]
        self.input_shape = shape
        for name in self._order():
            kind = self._type(name)
            if kind == "Input":
                self.value[name] = ("pixels", "input")
            elif kind in _SYNAPTIC:
                self._synapse(name)
            elif kind in _NEURONS:
                self._neuron(name)
            elif kind == "Threshold":
                self._maxpool(name)
            elif kind == "Scale":
                self._scale(name)
            elif kind == "Flatten":
                self._flatten(name)
            elif kind == "Output":
                self._output(name)
            else:
                self._fail(name, f"{kind} has no spikeforge layer")
        return self.layers, self.arrays, self.notes

    def _one_source(self, name, kinds):
        sources = self.predecessors[name]
        if len(sources) != 1 or self.value.get(sources[0], ("",))[0] not in kinds:
            self._fail(name, f"{self._type(name)} must read exactly one "
                             f"{' or '.join(kinds)} value")
        return sources[0]

    def _lift(self, name, shape):
        """The contract shape of node ``name``'s NIR ``shape`` (``(C, L)`` -> ``(C, 1, L)``)."""
        shape = [int(v) for v in np.asarray(shape)]
        if name in self.lifted:
            return [shape[0], 1, *shape[1:]]
        return shape

    def _synapse(self, name):
        kind = self._type(name)
        pools = kind in ("SumPool2d", "AvgPool2d")
        source = self._one_source(name, ("spikes",) if pools else ("pixels", "spikes"))
        node = self.graph.nodes[name]
        if kind == "Conv1d" and source not in self.lifted:
            self._fail(name, "Conv1d maps only on (C, L) maps: the input or another Conv1d's")
        if kind != "Conv1d" and source in self.lifted:
            self._fail(name, f"{kind} reads a (C, L) map, which only Conv1d and Flatten read")
        if kind == "Conv1d":
            self.lifted.add(name)
        entry = {"name": self._layer_name(name), "inputs": [self.value[source][1]]}
        if pools:
            if np.any(np.asarray(node.padding) != 0):
                self._fail(name, f"{kind} pads its input; spikeforge pools do not pad")
            # An int kernel or stride means both axes (snnTorch writes ints).
            entry.update(type="avgpool2d", kernel=_pair(node.kernel_size),
                         stride=_pair(node.stride))
        else:
            entry.update(self._weights(name, entry["name"], kind))
        entry["out_shape"] = self._lift(name, node.output_type["output"])
        self.value[name] = ("synapse", entry)

    def _weights(self, name, layer, kind):
        node = self.graph.nodes[name]
        weight = as_array(node.weight)
        bias = as_array(getattr(node, "bias", np.zeros(weight.shape[0])))
        fields = {}
        if kind in ("Conv1d", "Conv2d"):
            if np.any(as_array(node.dilation) != 1) or int(node.groups) != 1:
                self._fail(name, f"{kind} with dilation or groups has no spikeforge layer")
            if isinstance(node.padding, str):
                self._fail(name, f"{kind} padding {node.padding!r} is not an explicit integer "
                                 f"padding; write the padding as integers")
            stride, padding = _pair(node.stride), _pair(node.padding)
            if kind == "Conv1d":    # kernel (1, k) on (C, 1, L): no stride or padding on H
                weight = weight[:, :, None, :]
                stride, padding = [1, stride[0]], [0, padding[0]]
            fields.update(type="conv2d", out_channels=int(weight.shape[0]),
                          kernel=[int(v) for v in weight.shape[2:]], stride=stride,
                          padding=padding)
        else:
            fields.update(type="linear", out_features=int(weight.shape[0]))
        scale = 1.0
        if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))):
            self._fail(name, "the weights or the bias are not finite numbers")
        integral = np.all(weight == np.rint(weight)) and np.all(bias == np.rint(bias))
        low, high = int_range(WEIGHT_BITS[1])
        if not integral or weight.min(initial=0) < low or weight.max(initial=0) > high:
            if self.weight_bits is None:
                self._fail(name, "the weights are not integers within 8 signed bits; pass "
                                 "--weight-bits N to scale and round them (reported)")
            scale, error = _quantization_step(weight, bias, self.weight_bits)
            rounding = ("exactly, no rounding" if error == 0 else
                        f"rounded to the nearest integer (largest rounding {error:.6g} of a step)")
            self.notes.append(f"node {name!r}: weights, bias and threshold divided by the step "
                              f"{scale!r}, {rounding}")
        weight, bias = np.rint(weight / scale), np.rint(bias / scale)
        bits = self.weight_bits or _bits_for(weight, WEIGHT_BITS[0])
        if bits > WEIGHT_BITS[1] or _bits_for(weight, WEIGHT_BITS[0]) > bits:
            self._fail(name, f"the weights need more than {bits} signed bits")
        fields["weight_bits"] = bits
        self.arrays[f"{layer}.weight"] = weight.astype(np.int8)
        if np.any(bias != 0):
            fields["bias_bits"] = _bits_for(bias, BIAS_BITS[0])
            if fields["bias_bits"] > BIAS_BITS[1]:
                self._fail(name, f"the bias needs more than {BIAS_BITS[1]} signed bits")
            self.arrays[f"{layer}.bias"] = bias.astype(np.int32)
        fields["_scale"] = scale
        return fields

    def _leak(self, name, tau, r):
        """The contract leak of a decay ``tau, r`` (one Euler step, ``dt = tau / r``)."""
        if math.isinf(tau) and math.isinf(r):
            return {"kind": "none"}
        if math.isinf(tau) or not r >= 1 or not tau > 0:
            self._fail(name, f"tau = {tau}, r = {r} is not a decay with unit input weight "
                             f"(r = tau / dt >= 1)")
        beta = 1.0 - 1.0 / r
        if not self.approximate_leak:
            self._fail(name, f"the leak beta = {beta:.6g} (tau = {tau:.6g}, r = {r:.6g}) decays "
                             f"without rounding, which no contract leak reproduces exactly; "
                             f"pass --approximate-leak to round it")
        for shift in range(1, MEMBRANE_BITS[1]):
            if beta == 1.0 - 2.0 ** -shift:
                self.notes.append(f"node {name!r}: leak beta = {beta:.6g} approximated by "
                                  f"V - (V >> {shift}), which rounds toward minus infinity")
                return {"kind": "shift", "shift": shift}
        factor = int(np.rint(beta * (1 << _APPROXIMATE_FRAC_BITS)))
        self.notes.append(f"node {name!r}: leak beta = {beta:.6g} approximated by (V * {factor}) "
                          f">> {_APPROXIMATE_FRAC_BITS}, which rounds toward minus infinity")
        return {"kind": "mul", "factor": factor, "frac_bits": _APPROXIMATE_FRAC_BITS}

    def _neuron_fields(self, name, scale):
        """``(neuron json, spiking)`` of a neuron node, the current divided by ``scale``."""
        kind = self._type(name)
        if kind in ("IF", "I"):
            r = self._uniform(name, "r")
            if r != 1:
                self._fail(name, f"{kind} with r = {r!r} scales its input; only r = 1 maps")
            leak = {"kind": "none"}
        else:
            if kind == "CubaLIF" and self._uniform(name, "w_in") != 1:
                self._fail(name, f"the synaptic current filter (w_in = "
                                 f"{self._uniform(name, 'w_in')!r}) has no contract form")
            if self._uniform(name, "v_leak") != 0:
                self._fail(name, "a non-zero v_leak has no contract form")
            tau = self._uniform(name, "tau_mem" if kind == "CubaLIF" else "tau")
            leak = self._leak(name, tau, self._uniform(name, "r"))
        if kind in ("I", "LI"):
            return {"leak": leak}, False
        reset = self._uniform(name, "v_reset")
        if reset != 0:
            self._fail(name, f"it resets to v_reset = {reset!r}; the contract resets to 0 or by "
                             f"subtraction")
        threshold = self._uniform(name, "v_threshold") / scale
        if not threshold >= 0 or math.isinf(threshold):
            self._fail(name, f"v_threshold {threshold!r} is not a non-negative finite number; "
                             f"contract thresholds are at least 1")
        return {"threshold": math.floor(threshold) + 1, "reset": "zero", "leak": leak}, True

    def _neuron(self, name):
        sources = self.predecessors[name]
        single = self.value.get(sources[0]) if len(sources) == 1 else None
        if single is not None and single[0] == "synapse" and self.successors[sources[0]] == [name]:
            entry = dict(single[1])
            scale = entry.pop("_scale", 1.0)
            if entry["type"] == "avgpool2d" and self._type(sources[0]) == "AvgPool2d":
                if self._type(name) not in ("IF", "LIF", "CubaLIF"):
                    self._fail(sources[0], "AvgPool2d is a mean; it folds exactly only into a "
                                           "directly following IF neuron (write SumPool2d)")
                scale = 1.0 / float(np.prod(entry["kernel"]))
            neuron, spiking = self._neuron_fields(name, scale)
            if entry["type"] == "avgpool2d" and neuron["leak"]["kind"] != "none" \
                    and self._type(sources[0]) == "AvgPool2d":
                self._fail(sources[0], "AvgPool2d is a mean; it folds exactly only into a "
                                       "directly following IF neuron (write SumPool2d)")
            entry.update(output="spikes" if spiking else "membrane", neuron=neuron)
            if sources[0] in self.lifted:
                self.lifted.add(name)
            self.layers.append(entry)
            self.value[name] = ("spikes" if spiking else "membrane", entry["name"])
            return
        self._add(name, sources)

    def _add(self, name, sources):
        inputs, scales = [], []
        for source in sources:
            scale = 1
            if self._type(source) == "Scale":
                scale, source = self.value[source][1], self.predecessors[source][0]
            kind, layer = self.value.get(source, ("", None))
            if kind == "synapse":
                if self._type(source) == "AvgPool2d":
                    self._fail(source, "AvgPool2d is a mean; it folds exactly only into a "
                                       "directly following IF neuron (write SumPool2d)")
                entry = dict(layer)
                if entry.pop("_scale", 1.0) != 1.0 or len(self.successors[source]) != 1:
                    self._fail(source, "a current feeding a residual add must have integer "
                                       "weights and no other reader")
                entry["output"] = "current"
                self.layers.append(entry)
                layer = entry["name"]
                self.value[source] = ("current", layer)
            elif kind != "spikes":
                self._fail(name, "a neuron reading spikes or a current directly (not through "
                                 "a synaptic node) must be a residual add of two or more inputs")
            inputs.append(layer)
            scales.append(scale)
        if len(inputs) < 2:
            self._fail(name, "a neuron reading spikes or a current directly (not through a "
                             "synaptic node) must be a residual add of two or more inputs")
        neuron, spiking = self._neuron_fields(name, 1.0)
        if any(source in self.lifted or (self._type(source) == "Scale"
                                         and self.predecessors[source][0] in self.lifted)
               for source in sources):
            self.lifted.add(name)
        shape = self._lift(name, self.graph.nodes[name].output_type["output"])
        entry = {"name": self._layer_name(name), "type": "add", "inputs": inputs,
                 "scales": scales, "output": "spikes" if spiking else "membrane",
                 "out_shape": shape, "neuron": neuron}
        self.layers.append(entry)
        self.value[name] = (entry["output"], entry["name"])

    def _scale(self, name):
        source = self._one_source(name, ("spikes", "synapse"))
        if source in self.lifted:
            self.lifted.add(name)
        scale = self._uniform(name, "scale")
        if scale != round(scale) or not int_range(16)[0] <= scale <= int_range(16)[1]:
            self._fail(name, f"the scale {scale!r} is not a 16-bit integer")
        if [self._type(t) for t in self.successors[name]] not in (["IF"], ["LIF"], ["CubaLIF"],
                                                                  ["I"], ["LI"]):
            self._fail(name, "Scale maps only as an input of a residual add (into a neuron)")
        self.value[name] = ("scale", int(scale))

    def _maxpool(self, name):
        source = self._one_source(name, ("synapse",))
        threshold = self._uniform(name, "threshold")
        entry = dict(self.value[source][1])
        entry.pop("_scale", None)
        if self._type(source) != "SumPool2d" or not 0 <= threshold < 1:
            self._fail(name, "Threshold maps only after a SumPool2d of spikes with 0 <= "
                             "threshold < 1 (a max-pool)")
        entry.update(type="maxpool2d", output="spikes")
        self.layers.append(entry)
        self.value[name] = ("spikes", entry["name"])

    def _flatten(self, name):
        source = self._one_source(name, ("spikes",))
        node = self.graph.nodes[name]
        shape = [int(v) for v in np.asarray(node.input_type["input"])]
        start, end = int(node.start_dim) % len(shape), int(node.end_dim) % len(shape)
        if source in self.lifted:
            # (C, L) -> (C, 1, L): NIR axis 0 stays 0, axis 1 becomes 2.
            shape = [shape[0], 1, shape[1]]
            start, end = (0 if start == 0 else 2), (0 if end == 0 else 2)
        out_shape = [*shape[:start], int(np.prod(shape[start:end + 1])), *shape[end + 1:]]
        if len(out_shape) == 3 and source in self.lifted:
            self.lifted.add(name)
        entry = {"name": self._layer_name(name), "type": "flatten",
                 "inputs": [self.value[source][1]], "output": "spikes", "start_dim": start,
                 "end_dim": end, "out_shape": out_shape}
        self.layers.append(entry)
        self.value[name] = ("spikes", entry["name"])

    def _output(self, name):
        source = self._one_source(name, ("spikes", "membrane"))
        kind, layer = self.value[source]
        if kind == "membrane":
            return
        # A bundle ends in one non-spiking layer; counting the spikes keeps them exact.
        last = next(entry for entry in self.layers if entry["name"] == layer)
        size = int(np.prod(last["out_shape"]))
        if len(last["out_shape"]) != 1:
            self._fail(source, "the graph's output fires spikes of a multi-axis feature map; "
                               "flatten it first")
        count = self._layer_name(f"{layer}_count")
        self.layers.append({"name": count, "type": "linear", "inputs": [layer],
                            "output": "membrane", "out_features": size, "out_shape": [size],
                            "weight_bits": WEIGHT_BITS[0], "neuron": {}})
        self.arrays[f"{count}.weight"] = np.eye(size, dtype=np.int8)
        self.notes.append(f"node {source!r} fires into the graph's output, and a bundle ends in "
                          f"a non-spiking layer: appended layer {count!r} (identity weights) "
                          f"whose membrane counts its spikes")
