"""ANN -> SNN conversion: a quantized :class:`QuantNet` becomes an integer bundle.

Each quantized ReLU (clip ``lambda``, ``L`` levels) becomes an integrate-and-fire neuron:
leak none, reset by subtraction, initial membrane ``theta >> 1`` and threshold
``theta = round(lambda / unit)`` in the layer's integer current units. Over ``T = L``
timesteps such a neuron fires ``n`` spikes where the quantized ReLU outputs ``n * lambda / L``
(exactly for the constant-current first layer, approximately for later layers). The last
synaptic layer integrates without firing (output ``"membrane"``); after ``T`` steps its
membrane is ``T * logits / unit``, so its argmax is the ANN's prediction.

Pooling. An ``avgpool2d`` becomes the contract's avg-pool neuron with threshold
``K = kh * kw``, reset by subtraction and initial membrane ``K >> 1``: it fires exactly
``round_half_up(S / K)`` times for ``S`` input spikes in its window, which is what the quantized
forward pass computes (:func:`spikeforge.train.quant.qavgpool`), so it is exact in spike
counts. A ``maxpool2d`` becomes the contract's OR max-pool, which is *approximate* for rates:
the OR of a window's spike trains fires at least as often as its busiest input (the ANN's max)
and more when the inputs fire at different timesteps; it equals the max only when the
busiest input fires whenever any other does (e.g. a window with a single active input).

Residual blocks. An ``add`` sums currents and spikes in one integer unit ``u`` (one step of its
membrane stands for the real value ``u``). Every synaptic layer the add reads as ``"current"``
(the block's second conv, a 1x1 projection shortcut) is quantized with that *shared* unit
``u = max`` of the members' own units (:func:`spikeforge.train.quant.current_unit`, with the
add's ``lambda`` as the bound), so their integer currents add with scale 1. A spike input
(identity shortcut) whose spikes stand for ``s`` gets the integer scale
``round_half_up(s / u)`` (clipped to 16 bits); the quantized forward pass multiplies that
input by ``scale * u / s`` (an identity weight quantized with step ``u / s``), so the trained
network computes exactly what the integer add computes: per timestep the current
``I2 + scale * spike``, whose average over ``T = L`` steps is the ANN's ``(conv2 + shortcut) / u``.
The add's threshold is ``round(lambda / u)`` like any neuron's.

Weights, biases and thresholds are the integers of
:meth:`spikeforge.train.qnet.QuantNet.quant_layers`, the same call the quantized forward pass
uses, so the bundle holds exactly the trained fake-quantized values (see
:mod:`spikeforge.train.quant`).
"""

import numpy as np
import torch

from spikeforge.golden import write_bundle
from spikeforge.golden.bundle import FORMAT_NAME, FORMAT_VERSION

__all__ = ["network_parts", "export_bundle"]


def _to_int(tensor, dtype):
    """Cast a float tensor of exact integers to a NumPy ``dtype``; refuse anything else."""
    values = tensor.detach().to(torch.float64).cpu().numpy()
    if not np.array_equal(values, np.round(values)):
        raise ValueError("a quantized tensor holds non-integer values; the scaling is broken")
    return values.astype(dtype)


def _if_neuron(threshold):
    """The converted neuron: IF (no leak), reset by subtraction, initial membrane theta >> 1."""
    return {"threshold": int(threshold), "leak": {"kind": "none"}, "reset": "subtract",
            "v_init": "half"}


def _synaptic_layer(net, spec, q, arrays):
    """Manifest fields of a conv2d/conv3d/linear layer; stores its integer arrays in ``arrays``."""
    name = spec["name"]
    obj = {}
    if spec["type"] in ("conv2d", "conv3d"):
        dims = 2 if spec["type"] == "conv2d" else 3
        obj.update(out_channels=spec["out_channels"], kernel=[spec["kernel"]] * dims,
                   stride=[spec["stride"]] * dims, padding=[spec["padding"]] * dims)
    else:
        obj["out_features"] = spec["out_features"]
    obj["weight_bits"] = net.weight_bits
    arrays[f"{name}.weight"] = _to_int(q.weight_int, np.int8)
    if q.bias_int is not None:
        obj["bias_bits"] = net.bias_bits
        arrays[f"{name}.bias"] = _to_int(q.bias_int, np.int32)
    if spec.get("output") == "current":
        obj["output"] = "current"
    elif q.threshold is None:
        obj["output"] = "membrane"
        obj["neuron"] = {"leak": {"kind": "none"}}
    else:
        obj["neuron"] = _if_neuron(q.threshold)
    return obj


def network_parts(net, *, name, input_spec, dataset=None, metadata=None):
    """Return ``(manifest, arrays)`` of the integer SNN that ``net`` converts to.

    Parameters
    ----------
    net : QuantNet
        A network trained in ``mode="quant"`` (its ``timesteps`` must equal ``levels`` for the
        conversion to be faithful; this is not enforced).
    name : str
        The network's name in the manifest.
    input_spec : dict
        The manifest's ``input`` object (``shape``, ``bits``, ``raw_min``, ``raw_max``); its
        scale must be ``net.input_scale``.
    dataset, metadata : dict, optional
        Stored verbatim; ``metadata`` gains a ``scaling`` entry: per synaptic layer the real
        ``unit`` of one current step, the ``weight_step`` and the quantized ``lambda``.
    """
    span = input_spec["raw_max"] - input_spec["raw_min"]
    expected_scale = span / ((1 << input_spec["bits"]) - 1)
    if not np.isclose(expected_scale, net.input_scale, rtol=1e-12, atol=0):
        raise ValueError(f"input_spec's scale {expected_scale} differs from the network's "
                         f"input_scale {net.input_scale}")
    with torch.no_grad():
        quant = net.quant_layers()
    layers, arrays = [], {}
    # Real value of one integer step of each layer's current and weights, and the clip value
    # lambda (= threshold * unit) a spike stands for: what reports need to map integers back.
    scaling = {}
    for layer_name, q in quant.items():
        if isinstance(q, dict):  # an add: its shared current unit and clip value
            scaling[layer_name] = {"unit": float(q["unit"]), "lambda": float(q["lam"])}
        else:
            scaling[layer_name] = {"unit": float(q.unit), "weight_step": float(q.step),
                                   "lambda": None if q.lam is None else float(q.lam)}
    for spec in net.specs:
        layer_name, kind = spec["name"], spec["type"]
        obj = {"name": layer_name, "type": kind, "output": "spikes",
               "out_shape": list(spec["out_shape"])}
        if "inputs" in spec:
            obj["inputs"] = list(spec["inputs"])
        if kind in ("maxpool2d", "avgpool2d"):
            stride = spec.get("stride", spec["kernel"])
            obj.update(kernel=[spec["kernel"]] * 2, stride=[stride] * 2)
            if kind == "avgpool2d":
                obj["neuron"] = _if_neuron(spec["kernel"] ** 2)
        elif kind == "add":
            q = quant[layer_name]
            obj["scales"] = [int(_to_int(scale, np.int64)) for scale in q["scales"]]
            obj["neuron"] = _if_neuron(int(q["threshold"]))
        elif kind != "flatten":
            obj.update(_synaptic_layer(net, spec, quant[layer_name], arrays))
        layers.append(obj)
    manifest = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": name,
        "timesteps": net.timesteps, "membrane_bits": net.membrane_bits,
        "input": dict(input_spec), "layers": layers,
        "dataset": dict(dataset or {}), "metadata": {**(metadata or {}), "scaling": scaling},
    }
    return manifest, arrays


def export_bundle(net, path, **kwargs):
    """Convert ``net`` (see :func:`network_parts` for ``kwargs``) and write it to ``path``.

    Returns the validated :class:`spikeforge.golden.Network`.
    """
    manifest, arrays = network_parts(net, **kwargs)
    return write_bundle(path, manifest, arrays)
