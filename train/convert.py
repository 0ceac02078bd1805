"""ANN -> SNN conversion: a quantized :class:`QuantNet` becomes an integer bundle.

Each quantized ReLU (clip ``lambda``, ``L`` levels) becomes an integrate-and-fire neuron:
leak none, reset by subtraction, initial membrane ``theta >> 1`` and threshold
``theta = round(lambda / unit)`` in the layer's integer current units. Over ``T = L``
timesteps such a neuron fires ``n`` spikes where the quantized ReLU outputs ``n * lambda / L``
(exactly for the constant-current first layer, approximately for later layers). The last
synaptic layer integrates without firing (output ``"membrane"``); after ``T`` steps its
membrane is ``T * logits / unit``, so its argmax is the ANN's prediction.

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
    scaling = {layer_name: {"unit": float(q.unit), "weight_step": float(q.step),
                            "lambda": None if q.lam is None else float(q.lam)}
               for layer_name, q in quant.items()}
    for spec in net.specs:
        layer_name, kind = spec["name"], spec["type"]
        obj = {"name": layer_name, "type": kind, "output": "spikes",
               "out_shape": list(spec["out_shape"])}
        if kind == "flatten":
            layers.append(obj)
            continue
        q = quant[layer_name]
        if kind == "conv2d":
            obj.update(out_channels=spec["out_channels"], kernel=[spec["kernel"]] * 2,
                       stride=[spec["stride"]] * 2, padding=[spec["padding"]] * 2)
        else:
            obj["out_features"] = spec["out_features"]
        obj["weight_bits"] = net.weight_bits
        arrays[f"{layer_name}.weight"] = _to_int(q.weight_int, np.int8)
        if q.bias_int is not None:
            obj["bias_bits"] = net.bias_bits
            arrays[f"{layer_name}.bias"] = _to_int(q.bias_int, np.int32)
        if q.threshold is None:
            obj["output"] = "membrane"
            obj["neuron"] = {"leak": {"kind": "none"}}
        else:
            obj["neuron"] = {"threshold": int(q.threshold), "leak": {"kind": "none"},
                             "reset": "subtract", "v_init": "half"}
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
