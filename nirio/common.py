"""Facts shared by the NIR exporter and importer: the convention's names and small helpers."""

import json

import numpy as np

from spikeforge.golden.network import int_range
from spikeforge.golden.synapse import current_bound

__all__ = [
    "NIRError",
    "FORMAT",
    "GRAPH_KEY",
    "LAYER_KEY",
    "NEURON_KEY",
    "require_nir",
    "nir_array",
    "as_array",
    "dumps",
    "loads",
    "membrane_bound",
    "saturation_free",
    "layer_current_bounds",
]

#: ``metadata["format"]`` of a graph spikeforge wrote; only such a graph's metadata is read.
FORMAT = "spikeforge"
#: Metadata keys (JSON text, so that HDF5 stores them as one string each): the network's
#: header on the graph, a layer's manifest entry on its main node, a neuron on its neuron node.
GRAPH_KEY = "spikeforge_network"
LAYER_KEY = "spikeforge_layer"
NEURON_KEY = "spikeforge_neuron"
#: float32 holds every integer of magnitude up to 2**24 exactly.
_FLOAT32_EXACT = 1 << 24


class NIRError(ValueError):
    """A NIR graph or an export request the contract cannot honour; one sentence saying why."""


def require_nir():
    """Return the ``nir`` module, or raise :class:`NIRError` saying how to install it."""
    try:
        import nir
    except ImportError:
        raise NIRError("NIR support needs the nir package, which is not installed; install it "
                       "with pip install 'spikeforge[nir]'") from None
    return nir


def nir_array(values):
    """Integer values as the float array NIR consumers expect (snnTorch and nirtorch build
    float32 torch modules): float32 while every value is exact in it, float64 beyond."""
    values = np.asarray(values)
    wide = values.size and int(np.abs(values.astype(np.int64)).max()) > _FLOAT32_EXACT
    return values.astype(np.float64 if wide else np.float32)


def as_array(values, dtype=np.float64):
    """A node field as a NumPy array; snnTorch leaves torch tensors in the nodes it builds
    (they become arrays only after ``nir.write`` and ``nir.read``)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def loads(text, what):
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError) as error:
        raise NIRError(f"the spikeforge metadata of {what} is not valid JSON ({error})") from None


def membrane_bound(initial, current, timesteps):
    """Largest ``|V|`` a neuron can reach in ``timesteps`` steps from ``|V0| <= initial`` with
    ``|I| <= current`` per step: neither leak kind nor either reset increases ``|V|``."""
    return int(initial) + int(timesteps) * int(current)


def saturation_free(bound, membrane_bits):
    """True when a membrane bounded by ``bound`` never reaches the saturation limits."""
    low, high = int_range(membrane_bits)
    return bound < high and -bound > low


def layer_current_bounds(network_layers, max_pixel):
    """``{layer name: largest |I|}`` for every layer with a current (synaptic, avg-pool, add).

    Spikes are 0/1, pixels ``0..max_pixel``; an add sums ``|scale| *`` its inputs' bounds.
    """
    bounds = {}
    currents = {layer.name for layer in network_layers if layer.output == "current"}
    for layer in network_layers:
        if layer.is_synaptic:
            top = max_pixel if layer.is_direct_encoded else 1
            bounds[layer.name] = current_bound(layer.weight, layer.bias, top)
        elif layer.type == "avgpool2d":
            bounds[layer.name] = int(np.prod(layer.kernel))
        elif layer.type == "add":
            bounds[layer.name] = sum(abs(scale) * (bounds[source] if source in currents else 1)
                                     for source, scale in zip(layer.inputs, layer.scales))
    return bounds
