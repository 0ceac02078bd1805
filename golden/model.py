"""Run a whole network: the golden model's layer-major schedule, traces and op counts.

The schedule is the accelerator's (``docs/accelerator.md``, the sequencer): for each layer,
for each timestep.
Because every timestep's input spikes of a layer are known once the previous layer is done,
the synaptic currents of all ``T`` timesteps are computed in one batched product, and only
the aggregation (leak, fire, reset) steps through time. The arithmetic is
``docs/neuron.md``; nothing here depends on torch.
"""

from dataclasses import dataclass, field

import numpy as np

from .network import Network
from .neuron import aggregate, initial_membrane
from .synapse import avgpool2d_current, current_bound, fanout, maxpool2d, weighted_current

__all__ = [
    "LayerTrace",
    "GoldenResult",
    "quantize_input",
    "check_input",
    "run",
]


@dataclass
class LayerTrace:
    """Per-timestep values of one layer, each with shape ``(T, N, *layer.out_shape)``.

    ``current`` is the integer input current ``I`` (``None`` for max-pool and flatten),
    ``membrane`` the value written back after reset (``None`` for layers without neurons),
    ``spikes`` the 0/1 ``uint8`` output (``None`` for current and membrane outputs).
    """

    current: np.ndarray | None
    membrane: np.ndarray | None
    spikes: np.ndarray | None


@dataclass
class GoldenResult:
    """What :func:`run` returns for a batch of ``N`` images.

    Attributes
    ----------
    predictions : (N,) int64
        ``argmax`` of the output layer's final membrane; ties go to the lowest index.
    output_membrane : (N, classes) int64
        The output layer's membrane after the last timestep, flattened.
    first_layer_macs : (N,) int64
        Multiply-accumulates of the direct-encoded layer(s), once per image (zero weights
        skipped).
    synaptic_ops : dict layer name -> (T, N) int64
        Accumulates caused by spike events (and residual additions) per layer and timestep.
    spikes : dict layer name -> (T, N) int64
        Spikes fired per neuron layer and timestep.
    traces : dict layer name -> LayerTrace, or None
        Only when ``run(..., trace=True)``.
    """

    predictions: np.ndarray
    output_membrane: np.ndarray
    first_layer_macs: np.ndarray
    synaptic_ops: dict = field(default_factory=dict)
    spikes: dict = field(default_factory=dict)
    traces: dict | None = None

    @property
    def total_synaptic_ops(self):
        return int(sum(int(v.sum()) for v in self.synaptic_ops.values()))

    @property
    def total_spikes(self):
        return int(sum(int(v.sum()) for v in self.spikes.values()))


def quantize_input(raw, spec):
    """Map raw dataset values onto the network's unsigned integer input.

    ``x = clip(floor((raw - raw_min) * (2**bits - 1) / (raw_max - raw_min) + 1/2), 0,
    2**bits - 1)`` computed in float64 (``docs/neuron.md`` section 5). Returns ``int64``.
    """
    top = (1 << spec.bits) - 1
    span = spec.raw_max - spec.raw_min
    scaled = (np.asarray(raw, dtype=np.float64) - spec.raw_min) * top / span
    return np.clip(np.floor(scaled + 0.5), 0, top).astype(np.int64)


def check_input(network, x):
    """Return ``x`` as ``int64`` after checking its shape (at least one sample), dtype and
    range; raise ``ValueError``."""
    x = np.asarray(x)
    expected = network.input.shape
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != tuple(expected):
        raise ValueError(f"input batch has shape {tuple(x.shape)}, expected (N, "
                         f"{', '.join(map(str, expected))}) for network {network.name!r}")
    if x.shape[0] == 0:
        raise ValueError(f"input batch is empty (shape {tuple(x.shape)}); give the network "
                         f"{network.name!r} at least one sample")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"input batch has dtype {x.dtype}; quantize it to integers first "
                         f"(spikeforge.golden.quantize_input)")
    top = (1 << network.input.bits) - 1
    if x.size and (int(x.min()) < 0 or int(x.max()) > top):
        raise ValueError(f"input values span {int(x.min())}..{int(x.max())}, outside the "
                         f"network's {network.input.bits}-bit unsigned range 0..{top}")
    return x.astype(np.int64)


def _spike_sum(spikes):
    """(T, N, ...) -> (T, N) counts."""
    return spikes.reshape(spikes.shape[0], spikes.shape[1], -1).sum(axis=2, dtype=np.int64)


def _work_dtype(layer, network, bound):
    """``int32`` when no value of the layer's aggregation can leave 31 bits, else ``int64``.

    ``|leak(V) + I| <= 2**(B-1) + bound`` and a multiplicative leak's product needs
    ``B - 1 + frac_bits`` bits; halving the memory traffic of the time loop is worth the check.
    Layers without a neuron (current outputs, summed by an ``add``) stay ``int64``.
    """
    if layer.neuron is None:
        return np.int64
    bits = network.layer_membrane_bits(layer)
    leak = layer.neuron.leak
    product_bits = bits - 1 + (leak.frac_bits if leak.kind == "mul" else 0)
    if product_bits <= 30 and (1 << (bits - 1)) + bound < (1 << 31):
        return np.int32
    return np.int64


def _synaptic_ops(source, fanouts):
    """(T, N) accumulates: each input spike costs its element's fan-out.

    A float matrix-vector product (BLAS) is exact here: the total is at most
    ``sum(fanouts)``, and float32 is used only while that stays below 2**24.
    """
    dtype = np.float32 if int(fanouts.sum()) < (1 << 24) else np.float64
    flat = source.reshape(source.shape[0], source.shape[1], -1)
    return (flat.astype(dtype) @ fanouts.reshape(-1).astype(dtype)).astype(np.int64)


def _integrate(layer, currents, network, record):
    """Step the aggregation core through time. ``currents`` is (T, N, ...) or (N, ...)
    (constant over time for a direct-encoded layer). Returns (spikes, membranes, final V)."""
    timesteps = network.timesteps
    constant = currents.ndim == len(layer.out_shape) + 1
    shape = currents.shape if constant else currents.shape[1:]
    membrane = initial_membrane(shape, layer.neuron, currents.dtype)
    spiking = layer.neuron.threshold is not None
    bits = network.layer_membrane_bits(layer)
    spikes = np.empty((timesteps, *shape), dtype=np.uint8) if spiking else None
    membranes = np.empty((timesteps, *shape), dtype=np.int64) if record else None
    for t in range(timesteps):
        membrane, fired = aggregate(membrane, currents if constant else currents[t], layer.neuron,
                                    bits)
        if spiking:
            spikes[t] = fired
        if record:
            membranes[t] = membrane
    return spikes, membranes, membrane


def run(network: Network, x, *, trace=False):
    """Run ``network`` on the integer input batch ``x`` (N, *network.input.shape).

    Returns a :class:`GoldenResult`. With ``trace=True`` it also holds, per layer, the
    current, membrane and spikes of every timestep (memory grows with T x N x neurons).

    Raises
    ------
    ValueError
        ``x`` is an empty batch (N = 0), has the wrong shape, is not integer or leaves the
        input range (:func:`check_input`).
    """
    x = check_input(network, x)
    timesteps, n = network.timesteps, x.shape[0]
    max_pixel = (1 << network.input.bits) - 1
    spikes_of = {}      # layer -> (T, N, ...) uint8 spikes
    currents_of = {}    # layer -> (T, N, ...) int64 currents (output == "current")
    result = GoldenResult(predictions=None, output_membrane=None,
                          first_layer_macs=np.zeros(n, dtype=np.int64),
                          traces={} if trace else None)

    for layer in network.layers:
        current = membranes = spikes = None
        if layer.is_synaptic and layer.is_direct_encoded:
            work = _work_dtype(layer, network,
                               current_bound(layer.weight, layer.bias, max_pixel))
            current = weighted_current(x, layer, max_pixel, out_dtype=work)       # (N, ...)
            result.first_layer_macs += int(fanout(layer).sum())
        elif layer.is_synaptic or layer.type == "avgpool2d":
            source = spikes_of[layer.inputs[0]]                                    # (T, N, ...)
            flat = source.reshape(timesteps * n, *source.shape[2:])
            if layer.is_synaptic:
                work = _work_dtype(layer, network, current_bound(layer.weight, layer.bias, 1))
                current = weighted_current(flat, layer, 1, out_dtype=work)
            else:
                work = _work_dtype(layer, network, int(np.prod(layer.kernel)))
                current = avgpool2d_current(flat, layer).astype(work, copy=False)
            current = current.reshape(timesteps, n, *layer.out_shape)
            result.synaptic_ops[layer.name] = _synaptic_ops(source, fanout(layer))
        elif layer.type == "maxpool2d":
            source = spikes_of[layer.inputs[0]]
            spikes = maxpool2d(source.reshape(timesteps * n, *source.shape[2:]), layer)
            spikes = spikes.reshape(timesteps, n, *layer.out_shape)
        elif layer.type == "flatten":
            source = spikes_of[layer.inputs[0]]
            spikes = source.reshape(timesteps, n, *layer.out_shape)
        else:  # add: a weighted sum of spike trains and currents
            current = np.zeros((timesteps, n, *layer.out_shape), dtype=np.int64)
            ops = np.zeros((timesteps, n), dtype=np.int64)
            for source, scale in zip(layer.inputs, layer.scales):
                if source in spikes_of:
                    current += scale * spikes_of[source].astype(np.int64)
                    ops += _spike_sum(spikes_of[source])
                else:
                    current += scale * currents_of[source]
                    ops += layer.neurons
            result.synaptic_ops[layer.name] = ops

        if layer.output == "current":
            if current.ndim == len(layer.out_shape) + 1:  # direct-encoded: same every step
                current = np.broadcast_to(current, (timesteps, *current.shape))
            currents_of[layer.name] = current
        elif layer.neuron is not None:
            spikes, membranes, final = _integrate(layer, current, network, trace)
            if layer.output == "membrane":
                result.output_membrane = final.reshape(n, -1).astype(np.int64)
            else:
                result.spikes[layer.name] = _spike_sum(spikes)
        if spikes is not None:
            spikes_of[layer.name] = spikes
        if trace:
            if current is not None:
                current = current.astype(np.int64, copy=False)
                if current.ndim == len(layer.out_shape) + 1:
                    current = np.broadcast_to(current, (timesteps, *current.shape))
            result.traces[layer.name] = LayerTrace(current=current, membrane=membranes,
                                                   spikes=spikes)

    result.predictions = np.argmax(result.output_membrane, axis=1).astype(np.int64)
    return result
