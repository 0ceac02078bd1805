"""A small feed-forward network that trains as a float ANN, then as a quantized-ReLU ANN.

:class:`QuantNet` is built from a list of layer specs (conv2d, linear, flatten). Every
synaptic layer but the last is followed by a ReLU (``mode="float"``) or by a quantized ReLU
with a learnable clip value ``lambda`` (``mode="quant"``), with fake-quantized weights and
biases from :func:`spikeforge.train.quant.layer_quant`. The last synaptic layer is the
non-spiking output. :func:`spikeforge.train.convert.export_network` turns the quantized
network into an integer SNN with exactly the integers the quantized forward pass used.
"""

import torch
from torch import nn
import torch.nn.functional as F

from .quant import layer_quant, qrelu

__all__ = ["QuantNet"]

_SPEC_KEYS = {
    "conv2d": {"name", "type", "out_channels", "kernel", "stride", "padding"},
    "linear": {"name", "type", "out_features"},
    "flatten": {"name", "type"},
}


class QuantNet(nn.Module):
    """Conv/linear network with float and quantization-aware forward passes.

    Parameters
    ----------
    in_shape : tuple
        Per-sample input shape, e.g. ``(1, 8, 8)``.
    specs : list of dict
        Layer specs in order, each with ``name`` and ``type``: ``conv2d`` (``out_channels``,
        ``kernel``, ``stride``, ``padding``; square ints), ``linear`` (``out_features``) or
        ``flatten``. The last one must be ``linear`` or ``conv2d`` (the output layer).
    input_scale : float
        Real value of one input integer (``InputSpec.scale``); the network is fed
        ``pixels * input_scale``.
    timesteps, levels : int
        SNN timesteps ``T`` and quantized-ReLU levels ``L``.
    weight_bits, bias_bits, membrane_bits : int
        Integer widths of the exported SNN.
    """

    def __init__(self, in_shape, specs, *, input_scale, timesteps, levels, weight_bits=8,
                 bias_bits=16, membrane_bits=16):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.specs = [dict(s) for s in specs]
        self.input_scale = float(input_scale)
        self.timesteps, self.levels = int(timesteps), int(levels)
        self.weight_bits, self.bias_bits = int(weight_bits), int(bias_bits)
        self.membrane_bits = int(membrane_bits)
        self.mode = "float"
        self.synaptic = nn.ModuleDict()
        shape = self.in_shape
        for spec in self.specs:
            kind = spec.get("type")
            if kind not in _SPEC_KEYS:
                raise ValueError(f"layer spec {spec.get('name')!r} has type {kind!r}; "
                                 f"QuantNet supports {', '.join(_SPEC_KEYS)}")
            if set(spec) != _SPEC_KEYS[kind]:
                raise ValueError(f"layer spec {spec['name']!r} must have exactly the keys "
                                 f"{sorted(_SPEC_KEYS[kind])}")
            if kind == "conv2d":
                module = nn.Conv2d(shape[0], spec["out_channels"], spec["kernel"],
                                   stride=spec["stride"], padding=spec["padding"])
                size = [(s + 2 * spec["padding"] - spec["kernel"]) // spec["stride"] + 1
                        for s in shape[1:]]
                shape = (spec["out_channels"], *size)
                self.synaptic[spec["name"]] = module
            elif kind == "linear":
                if len(shape) != 1:
                    raise ValueError(f"linear layer {spec['name']!r} needs a flatten before it")
                self.synaptic[spec["name"]] = nn.Linear(shape[0], spec["out_features"])
                shape = (spec["out_features"],)
            else:
                shape = (int(torch.tensor(shape).prod()),)
            spec["out_shape"] = shape
        names = list(self.synaptic)
        if not names or self.specs[-1]["name"] != names[-1]:
            raise ValueError("the last layer spec must be the conv2d or linear output layer")
        self.hidden = names[:-1]
        #: Learnable clip value lambda of each hidden synaptic layer (set by calibrate()).
        self.lams = nn.ParameterDict({n: nn.Parameter(torch.tensor(1.0)) for n in self.hidden})
        #: Bound on |logit| used for the output layer's headroom (set by calibrate()).
        self.register_buffer("out_bound", torch.tensor(1.0))

    # ------------------------------------------------------------------ quantization

    def quant_layers(self):
        """:class:`LayerQuant` of every synaptic layer, in order (a dict by name).

        Layer 1 reads pixels (``s_in = input_scale``); layer ``l`` reads spikes that stand
        for the previous layer's quantized clip value ``lam``. This is the one computation
        both the quantized forward pass and the exporter use.
        """
        result = {}
        s_in = self.input_scale
        for name, module in self.synaptic.items():
            hidden = name in self.lams
            lam = self.lams[name].clamp(min=1e-3) if hidden else None
            bound = lam if hidden else self.timesteps * self.out_bound
            q = layer_quant(module.weight, module.bias, s_in, bound, lam=lam,
                            weight_bits=self.weight_bits, bias_bits=self.bias_bits,
                            membrane_bits=self.membrane_bits)
            result[name] = q
            if hidden:
                s_in = q.lam.detach()
        return result

    # ------------------------------------------------------------------ forward passes

    def _synapse(self, spec, module, h, weight, bias):
        if spec["type"] == "conv2d":
            return F.conv2d(h, weight, bias, stride=module.stride, padding=module.padding)
        return F.linear(h, weight, bias)

    def forward(self, x, *, record=False):
        """Logits for real-valued inputs ``x`` (N, *in_shape) in the current ``mode``.

        With ``record=True`` also return the list of hidden activations (after the (q)ReLU).
        """
        quant = self.quant_layers() if self.mode == "quant" else None
        hidden = []
        h = x
        for spec in self.specs:
            name = spec["name"]
            if spec["type"] == "flatten":
                h = torch.flatten(h, 1)
                continue
            module = self.synaptic[name]
            if quant is None:
                h = self._synapse(spec, module, h, module.weight, module.bias)
                if name in self.lams:
                    h = F.relu(h)
            else:
                q = quant[name]
                h = self._synapse(spec, module, h, q.weight_q, q.bias_q)
                if name in self.lams:
                    h = qrelu(h, q.lam, self.levels)
            if name in self.lams:
                hidden.append(h)
        return (h, hidden) if record else h

    @torch.no_grad()
    def calibrate(self, x, percentile=99.9, set_lambdas=True):
        """Set ``lambda`` of each hidden layer (from float activations) and ``out_bound``.

        ``lambda_l`` becomes the ``percentile`` of layer ``l``'s positive ReLU outputs;
        ``out_bound`` the largest ``|logit|`` on ``x`` in the current mode.
        """
        mode = self.mode
        if set_lambdas:
            self.mode = "float"
            _, hidden = self(x, record=True)
            for name, act in zip(self.hidden, hidden):
                positive = act[act > 0]
                value = torch.quantile(positive[:1 << 24], percentile / 100.0) \
                    if positive.numel() else torch.tensor(1.0)
                self.lams[name].fill_(float(value))
            self.mode = mode
        self.out_bound.fill_(float(self(x).abs().max()))
