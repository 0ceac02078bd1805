"""A :class:`Network` as a NIR graph, under the one convention ``docs/nir.md`` states.

One NIR step is one timestep (``dt = 1``, forward Euler). Per layer ``L``:

* conv2d -> ``Conv2d`` node ``L`` (explicit integer padding, never ``'same'``); linear ->
  ``Affine`` (with bias) or ``Linear``; conv3d -> a ``Conv2d`` over depth-folded channels
  ``(C*D, H, W)`` whose weight holds each depth tap at its input slice (exact: NIR has no
  Conv3d); the network input is folded by a ``Flatten`` node ``input.fold`` when a conv3d
  reads it;
* avgpool2d -> ``SumPool2d`` (window spike count; NIR's ``AvgPool2d`` is a mean); maxpool2d
  -> ``SumPool2d`` then ``Threshold(0.5)`` node ``L.or`` (the OR of 0/1 spikes);
* flatten -> ``Flatten`` with per-sample axes; add -> one ``Scale`` node ``L.scale<i>`` per
  input, all feeding the add's neuron node (NIR fan-in sums);
* a spiking neuron -> node ``L.neuron``: ``IF(r=1, v_threshold=theta-0.5, v_reset=0)``, or
  ``LIF(tau=1/(1-beta), r=tau, v_leak=0, ...)`` for a leak of factor ``beta``; the output
  layer -> ``I(r=1)`` or ``LI``.

What NIR cannot say (subtract reset, a leak's rounding, ``v_init``, saturation, the input
quantizer) is kept in spikeforge metadata, and :func:`export_graph` reports per node whether
NIR's own semantics alone reproduce the golden model.
"""

import numpy as np

from spikeforge.golden import network_to_parts
from spikeforge.golden.bundle import write_atomically

from .common import (
    FORMAT, GRAPH_KEY, LAYER_KEY, NEURON_KEY, NIRError, dumps, layer_current_bounds,
    membrane_bound, nir_array, require_nir, saturation_free,
)

__all__ = ["DT", "export_graph", "write_graph", "unroll_conv3d", "leak_factor", "port_names"]

#: The time step the export states: one NIR step is one contract timestep.
DT = 1.0
#: Spikes are 0/1, so a window sum is above 0.5 exactly when one spike is in the window.
_OR_THRESHOLD = 0.5
#: NIR tests ``v > v_threshold``; for integer V, ``theta - 0.5`` gives the contract's
#: ``V >= theta`` whether a consumer tests ``>`` or ``>=``.
_THRESHOLD_OFFSET = 0.5


def port_names(network):
    """``(input node, output node)`` names: ``input``/``output`` unless a layer is so named."""
    names = {layer.name for layer in network.layers}
    return "input", "output.port" if "output" in names else "output"


def leak_factor(leak):
    """The factor beta of ``V <- beta * V`` that a leak approximates (1 for no leak)."""
    if leak.kind == "shift":
        return 1.0 - 2.0 ** -leak.shift
    if leak.kind == "mul":
        return leak.factor / (1 << leak.frac_bits)
    return 1.0


def unroll_conv3d(weight, in_depth, stride, padding, out_depth):
    """The ``(C_out*D_out, C_in*D_in, kH, kW)`` Conv2d weight of a conv3d over depth-folded
    channels: output slice ``do`` reads input slice ``do*stride - padding + k`` with tap ``k``
    (slices in the zero padding contribute nothing and are left out)."""
    c_out, c_in, depth, kh, kw = weight.shape
    unrolled = np.zeros((c_out, out_depth, c_in, in_depth, kh, kw), dtype=weight.dtype)
    for out in range(out_depth):
        for tap in range(depth):
            source = out * stride - padding + tap
            if 0 <= source < in_depth:
                unrolled[:, out, :, source] = weight[:, :, tap]
    return unrolled.reshape(c_out * out_depth, c_in * in_depth, kh, kw)


def _folded(shape):
    """The NIR tensor shape of a layer: ``(C, D, H, W)`` travels as ``(C*D, H, W)``."""
    shape = tuple(shape)
    return (shape[0] * shape[1], *shape[2:]) if len(shape) == 4 else shape


class _Builder:
    def __init__(self, network):
        self.nir = require_nir()
        self.network = network
        self.nodes, self.edges, self.notes = {}, [], {}
        self.source = {}          # layer name -> node emitting its spikes or current
        self.input_node, self.output_node = port_names(network)
        self.bounds = layer_current_bounds(network.layers, (1 << network.input.bits) - 1)

    def add(self, name, node, inputs=(), notes=(), metadata=None):
        if metadata:
            node.metadata = metadata
        self.nodes[name] = node
        self.edges.extend((source, name) for source in inputs)
        self.notes[name] = list(notes)
        return name

    def read(self, source):
        """The node a layer reads ``source`` from (folding the 4D input on first use)."""
        if source != "input":
            return self.source[source]
        shape = self.network.input.shape
        if len(shape) != 4:
            return self.input_node
        fold = f"{self.input_node}.fold"
        if fold not in self.nodes:
            self.add(fold, self.nir.Flatten(input_type={"input": np.array(shape)},
                                            start_dim=0, end_dim=1), [self.input_node])
        return fold

    def neuron(self, layer, inputs, entry=None):
        """The layer's neuron node ``L.neuron`` reading ``inputs``; returns its name."""
        nir, neuron = self.nir, layer.neuron
        shape = _folded(layer.out_shape)
        ones, zeros = np.ones(shape, np.float32), np.zeros(shape, np.float32)
        beta = leak_factor(neuron.leak)
        leaky = beta != 1.0
        tau = 1.0 / (1.0 - beta) if leaky else None
        notes = []
        if neuron.leak.kind == "shift":
            notes.append(f"the shift leak V - (V >> {neuron.leak.shift}) rounds toward minus "
                         f"infinity; NIR's decay by {beta} does not round")
        elif leaky:
            notes.append(f"the leak (V * {neuron.leak.factor}) >> {neuron.leak.frac_bits} "
                         f"rounds toward minus infinity; NIR's decay by {beta} does not round")
        # The current shift k scales the input by 2**-k (NIR's r), without the rounding.
        gain = ones * 2.0 ** -neuron.current_shift
        if neuron.current_shift:
            notes.append(f"the current shift I >> {neuron.current_shift} rounds toward minus "
                         f"infinity; NIR's input scaling by 2**-{neuron.current_shift} does "
                         f"not round")
        if neuron.threshold is None:
            node = (nir.LI(tau=ones * tau, r=gain * tau, v_leak=zeros) if leaky
                    else nir.I(r=gain))
        else:
            threshold = ones * (neuron.threshold - _THRESHOLD_OFFSET)
            node = (nir.LIF(tau=ones * tau, r=gain * tau, v_leak=zeros, v_threshold=threshold,
                            v_reset=zeros) if leaky
                    else nir.IF(r=gain, v_threshold=threshold, v_reset=zeros))
            if neuron.reset == "subtract":
                notes.append("subtract reset has no NIR form; other NIR consumers will reset "
                             "to zero")
            if neuron.v_init == "half":
                notes.append(f"v_init 'half' starts the membrane at threshold >> 1 = "
                             f"{neuron.initial_membrane}; NIR neurons start at 0")
        bound = membrane_bound(neuron.initial_membrane, self.bounds[layer.name],
                               self.network.timesteps)
        bits = self.network.layer_membrane_bits(layer)
        if not saturation_free(bound, bits):
            notes.append(f"the {bits}-bit membrane can saturate (|V| up to {bound} in "
                         f"{self.network.timesteps} steps); NIR membranes do not saturate")
        metadata = {NEURON_KEY: dumps(neuron.to_json())}
        if entry is not None:
            metadata[LAYER_KEY] = dumps(entry)
        return self.add(f"{layer.name}.neuron", node, inputs, notes, metadata)

    def layer(self, layer, entry):
        nir, name = self.nir, layer.name
        entry = {k: v for k, v in entry.items() if k != "neuron"}
        meta = {LAYER_KEY: dumps(entry)}
        if layer.type == "add":
            scales = []
            for index, (source, scale) in enumerate(zip(layer.inputs, layer.scales)):
                scales.append(self.add(f"{name}.scale{index}", nir.Scale(
                    scale=np.full(_folded(layer.out_shape), scale, np.float32)),
                    [self.read(source)]))
            self.source[name] = self.neuron(layer, scales, entry)
            return
        if layer.type == "flatten":
            self.source[name] = self.add(name, self._flatten(layer), [self.read(layer.inputs[0])],
                                         metadata=meta)
            return
        if layer.type == "conv2d":
            node = nir.Conv2d(input_shape=tuple(layer.in_shape[1:]), weight=nir_array(layer.weight),
                              stride=tuple(layer.stride), padding=tuple(layer.padding),
                              dilation=(1, 1), groups=1, bias=self._bias(layer))
        elif layer.type == "conv3d":
            depth, out_depth = layer.in_shape[1], layer.out_shape[1]
            weight = unroll_conv3d(layer.weight, depth, layer.stride[0], layer.padding[0],
                                   out_depth)
            node = nir.Conv2d(input_shape=tuple(layer.in_shape[2:]), weight=nir_array(weight),
                              stride=tuple(layer.stride[1:]), padding=tuple(layer.padding[1:]),
                              dilation=(1, 1), groups=1,
                              bias=np.repeat(self._bias(layer), out_depth))
        elif layer.type == "linear":
            weight = nir_array(layer.weight)
            node = (nir.Linear(weight=weight) if layer.bias is None
                    else nir.Affine(weight=weight, bias=self._bias(layer)))
        else:  # maxpool2d, avgpool2d: a window sum
            node = nir.SumPool2d(kernel_size=np.array(layer.kernel), stride=np.array(layer.stride),
                                 padding=np.zeros(2, dtype=np.int64))
        main = self.add(name, node, [self.read(layer.inputs[0])], metadata=meta)
        if layer.type == "maxpool2d":
            self.source[name] = self.add(f"{name}.or", nir.Threshold(
                threshold=np.full(layer.out_shape, _OR_THRESHOLD, np.float32)), [main])
        elif layer.output == "current":
            self.source[name] = main
        else:
            self.source[name] = self.neuron(layer, [main])

    def _bias(self, layer):
        bias = layer.bias if layer.bias is not None else np.zeros(layer.out_shape[0], np.int32)
        return nir_array(bias)

    def _flatten(self, layer):
        shape, start, end = layer.in_shape, layer.start_dim, layer.end_dim
        if len(shape) == 4:
            # The 4D tensor travels folded as (C*D, H, W): only flattens that start at the
            # channel axis, or change nothing, have the same meaning there.
            if start == end:
                start = end = 0
            elif start == 0:
                end -= 1
            else:
                raise NIRError(f"layer {layer.name!r} flattens axes {start}..{end} of a 4D "
                               f"feature map, which has no NIR form once conv3d channels are "
                               f"folded with depth")
            shape = _folded(shape)
        return self.nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start,
                                end_dim=end)


def export_graph(network):
    """Return ``(graph, report)``: ``network`` as a ``nir.NIRGraph`` and a per-node verdict.

    ``report`` is ``{"exact": bool, "nodes": [{"node", "type", "layer", "exact", "notes"}]}``;
    ``notes`` name each construct NIR's own semantics do not reproduce. Raises
    :class:`NIRError` for a network with no NIR form at all.
    """
    builder = _Builder(network)
    nir = builder.nir
    manifest, _ = network_to_parts(network)
    header = {k: v for k, v in manifest.items() if k != "layers"}
    builder.add(builder.input_node, nir.Input(input_type={"input": np.array(network.input.shape)}))
    layer_of = {builder.input_node: None}
    for layer, entry in zip(network.layers, manifest["layers"]):
        before = set(builder.nodes)
        builder.layer(layer, entry)
        layer_of.update({node: layer.name for node in set(builder.nodes) - before})
    last = builder.source[network.output_layer.name]
    out_shape = np.array(_folded(network.output_layer.out_shape))
    builder.add(builder.output_node, nir.Output(output_type={"output": out_shape}), [last])
    layer_of[builder.output_node] = None
    # The header is the manifest without its layers; their order is kept as a name list
    # (HDF5 returns a graph's nodes sorted by name).
    header["layers"] = [layer.name for layer in network.layers]
    metadata = {"format": FORMAT, "dt": DT, GRAPH_KEY: dumps(header)}
    graph = nir.NIRGraph(nodes=builder.nodes, edges=builder.edges, metadata=metadata)
    nodes = [{"node": name, "type": type(node).__name__, "layer": layer_of.get(name),
              "exact": not builder.notes[name], "notes": builder.notes[name]}
             for name, node in builder.nodes.items()]
    return graph, {"exact": all(entry["exact"] for entry in nodes), "nodes": nodes}


def write_graph(network, path, *, strict=False):
    """Write ``network`` to the NIR file ``path`` and return :func:`export_graph`'s report.

    With ``strict=True`` a network that NIR's own semantics do not reproduce exactly is
    refused (:class:`NIRError` naming the first such node and construct) and nothing is
    written. The file is written to a temporary name and renamed, so a failure leaves
    neither a partial file nor the temporary behind.
    """
    graph, report = export_graph(network)
    if strict and not report["exact"]:
        first = next(entry for entry in report["nodes"] if entry["notes"])
        raise NIRError(f"{first['node']}: {first['notes'][0]}")
    nir = require_nir()
    write_atomically(path, lambda temporary: nir.write(temporary, graph), prefix=".nir-",
                     suffix=".nir")
    return report
