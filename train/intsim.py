"""A PyTorch integer simulation of a bundle, written independently of the golden model.

It implements ``docs/neuron.md`` for networks made of conv2d, conv3d, linear, maxpool2d,
avgpool2d, flatten and add (residual) layers, including synaptic and avg-pool layers whose output
is their raw ``"current"``, on ``int64`` tensors, with the schedule a time-stepped simulator would
use: for each timestep, for each layer (the golden model goes layer by layer instead). Any
other layer type raises ``NotImplementedError`` naming it.

Exactness: PyTorch has no ``int64`` convolution on the CPU, so convolutions and matrix
products run in ``float64`` on integer-valued tensors and are converted back. ``float64``
represents every integer below ``2**53`` exactly, and every partial sum here is an integer
bounded by ``sum|W| * max_input + |b|`` (< ``2**8 * 2**16 * fan_in`` for 8-bit weights and
16-bit inputs, far below ``2**53`` for any fan-in a bundle can have), so each sum is exact
whatever the summation order. :func:`_exact` checks the bound anyway.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["IntSimResult", "SUPPORTED_TYPES", "run"]

#: Layer types this simulation implements.
SUPPORTED_TYPES = ("conv2d", "conv3d", "linear", "maxpool2d", "avgpool2d", "flatten", "add")
_FLOAT_EXACT = 1 << 53


@dataclass
class IntSimResult:
    """Result of :func:`run` for ``N`` images (all tensors ``int64``).

    Attributes
    ----------
    predictions : (N,)
        Argmax of the output layer's final membrane (ties: lowest index).
    output_membrane : (N, classes)
        Final membrane of the output layer, flattened.
    spikes : dict name -> (T, N, *out_shape)
        0/1 output of every spiking layer (neuron layers, max-pool, flatten).
    membranes : dict name -> (T, N, *out_shape)
        Membrane after reset of every layer with a neuron, at every timestep.
    currents : dict name -> (T, N, *out_shape)
        Input current of every synaptic, avg-pool and add layer at every timestep (for a layer
        with ``output == "current"`` this is its output).
    """

    predictions: torch.Tensor
    output_membrane: torch.Tensor
    spikes: dict
    membranes: dict
    currents: dict


def _exact(layer, max_input):
    """Raise if a float64 product of ``layer`` could leave the exactly representable range."""
    weight = torch.as_tensor(layer.weight, dtype=torch.int64)
    bound = int(weight.abs().reshape(weight.shape[0], -1).sum(dim=1).max()) * max_input
    if layer.bias is not None:
        bound += int(torch.as_tensor(layer.bias, dtype=torch.int64).abs().max())
    if bound >= _FLOAT_EXACT:
        raise ValueError(f"layer {layer.name!r} can reach currents of {bound}, beyond the "
                         f"2**53 limit of exact float64 arithmetic")


def _synaptic(layer, x):
    """Exact integer current ``conv(x, W) + b`` (or ``x @ W.T + b``) of a batch ``x``."""
    weight = torch.as_tensor(layer.weight, dtype=torch.float64)
    bias = None if layer.bias is None else torch.as_tensor(layer.bias, dtype=torch.float64)
    x = x.to(torch.float64)
    if layer.type == "linear":
        out = F.linear(x, weight, bias)
    else:
        conv = F.conv3d if layer.type == "conv3d" else F.conv2d
        out = conv(x, weight, bias, stride=layer.stride, padding=layer.padding)
    return out.to(torch.int64)


def _pool(layer, spikes):
    """Max-pool (OR of spikes) or avg-pool current (count of spikes) of each window."""
    x = spikes.to(torch.float64)
    if layer.type == "maxpool2d":
        out = F.max_pool2d(x, layer.kernel, layer.stride)
    else:
        # divisor_override=1 turns the average into the window's sum: an exact spike count.
        out = F.avg_pool2d(x, layer.kernel, layer.stride, divisor_override=1)
    return out.to(torch.int64)


def _residual(layer, spikes, currents):
    """``I = sum_i scale_i * in_i`` over this timestep's spikes or currents of the inputs."""
    total = None
    for source, scale in zip(layer.inputs, layer.scales):
        value = spikes[source] if source in spikes else currents[source]
        term = int(scale) * value
        total = term if total is None else total + term
    return total


def _leak(v, leak):
    """``docs/neuron.md`` section 3; ``>>`` on signed int64 tensors is an arithmetic shift."""
    if leak.kind == "none":
        return v
    if leak.kind == "shift":
        return v - (v >> leak.shift)
    return (v * leak.factor) >> leak.frac_bits


def _step(v, current, neuron, low, high):
    """One timestep of a neuron layer: returns (membrane after reset, spikes or None)."""
    # The membrane integrates floor(I / 2**k) (docs/neuron.md section 2).
    scaled = torch.div(current, 1 << neuron.current_shift, rounding_mode="floor")
    v = torch.clamp(_leak(v, neuron.leak) + scaled, low, high)
    if neuron.threshold is None:
        return v, None
    fired = v >= neuron.threshold
    if neuron.reset == "subtract":
        v = torch.where(fired, v - neuron.threshold, v)
    else:
        v = torch.where(fired, torch.zeros_like(v), v)
    return v, fired.to(torch.int64)


def run(network, x_int):
    """Simulate ``network`` (a :class:`spikeforge.golden.Network`) on integer inputs.

    Parameters
    ----------
    network : spikeforge.golden.Network
    x_int : array-like of integers, shape (N, *network.input.shape)
        Quantized inputs (``spikeforge.golden.quantize_input``), ``0 .. 2**bits - 1``.

    Returns
    -------
    IntSimResult

    Raises
    ------
    NotImplementedError
        For a layer type outside :data:`SUPPORTED_TYPES`.
    """
    for layer in network.layers:
        if layer.type not in SUPPORTED_TYPES:
            raise NotImplementedError(f"spikeforge.train.intsim does not implement layer type "
                                      f"{layer.type!r} (layer {layer.name!r})")
    x = torch.as_tensor(x_int, dtype=torch.int64)
    if tuple(x.shape[1:]) != tuple(network.input.shape):
        raise ValueError(f"input batch has shape {tuple(x.shape)}, expected (N, "
                         f"{', '.join(map(str, network.input.shape))})")
    top = (1 << network.input.bits) - 1
    if x.numel() and (int(x.min()) < 0 or int(x.max()) > top):
        raise ValueError(f"input values lie outside the {network.input.bits}-bit range 0..{top}")
    timesteps, n = network.timesteps, x.shape[0]

    def bounds(layer):
        high = (1 << (network.layer_membrane_bits(layer) - 1)) - 1
        return -high - 1, high

    constant = {}   # direct-encoded layer -> current, computed once per image
    membrane = {}   # neuron layer -> current membrane
    for layer in network.layers:
        if layer.is_synaptic:
            _exact(layer, top if layer.is_direct_encoded else 1)
        if layer.is_synaptic and layer.is_direct_encoded:
            constant[layer.name] = _synaptic(layer, x)
        if layer.neuron is not None:
            membrane[layer.name] = torch.full((n, *layer.out_shape),
                                              layer.neuron.initial_membrane, dtype=torch.int64)
    spikes = {layer.name: [] for layer in network.layers if layer.output == "spikes"}
    membranes = {name: [] for name in membrane}
    currents = {layer.name: [] for layer in network.layers
                if layer.is_synaptic or layer.type in ("avgpool2d", "add")}

    for _ in range(timesteps):
        out = {}      # this timestep's spikes of each layer
        flowing = {}  # this timestep's current of each layer whose output is "current"
        for layer in network.layers:
            source = layer.inputs[0]
            current = None
            if layer.name in constant:
                current = constant[layer.name]
            elif layer.is_synaptic:
                current = _synaptic(layer, out[source])
            elif layer.type == "avgpool2d":
                current = _pool(layer, out[source])
            elif layer.type == "add":
                current = _residual(layer, out, flowing)
            elif layer.type == "maxpool2d":
                out[layer.name] = _pool(layer, out[source])
            else:  # flatten: C-order reshape of the per-sample axes start_dim..end_dim
                out[layer.name] = out[source].reshape(n, *layer.out_shape)
            if current is not None:
                currents[layer.name].append(current)
            if layer.output == "current":
                flowing[layer.name] = current
            elif layer.neuron is not None:
                v, fired = _step(membrane[layer.name], current, layer.neuron, *bounds(layer))
                membrane[layer.name] = v
                membranes[layer.name].append(v)
                if fired is not None:
                    out[layer.name] = fired
            if layer.name in spikes:
                spikes[layer.name].append(out[layer.name])

    final = membrane[network.output_layer.name].reshape(n, -1)
    return IntSimResult(
        predictions=torch.argmax(final, dim=1),  # first maximal index on ties
        output_membrane=final,
        spikes={k: torch.stack(v) for k, v in spikes.items()},
        membranes={k: torch.stack(v) for k, v in membranes.items()},
        currents={k: torch.stack(v) for k, v in currents.items()},
    )
