"""A feed-forward network (chains and residual blocks) that trains as a float ANN, then as a
quantized-ReLU ANN whose integers export exactly to a spiking bundle.

:class:`QuantNet` is built from a list of layer specs that mirror the bundle's layers:

- ``conv2d`` / ``conv3d`` (``out_channels``, ``kernel``, ``stride``, ``padding``; one int for
  every axis) and
  ``linear`` (``out_features``): synaptic layers. Optional ``bn`` (batch norm, float training
  only; :meth:`QuantNet.fold_batchnorm` folds it into the weights before quantized training)
  and, for conv2d, ``output="current"``: the layer has no neuron and only an ``add`` reads it.
- ``maxpool2d`` / ``avgpool2d`` (``kernel``, optional ``stride``), ``flatten``.
- ``add`` (``inputs``: two or more layers): a residual sum followed by a (quantized) ReLU.

Every spec may name its ``inputs`` (default: the previous layer; the first reads the input).
Every synaptic layer but the last is followed by a ReLU (``mode="float"``) or by a quantized
ReLU with a learnable clip value ``lambda`` (``mode="quant"``), with fake-quantized weights and
biases from :func:`spikeforge.train.quant.layer_quant`; so is every ``add``. The last synaptic
layer is the non-spiking output. :func:`spikeforge.train.convert.export_network` turns the
quantized network into an integer SNN with exactly the integers the quantized forward pass used.
"""

import torch
from torch import nn
import torch.nn.functional as F

from spikeforge.golden.manifest import WEIGHT_BITS
from spikeforge.golden.network import conv_output_size

from .quant import add_threshold, current_unit, layer_quant, qavgpool, qrelu, round_half_up

__all__ = ["QuantNet", "SCALE_LIMIT"]

#: The contract's residual scales are signed 16-bit integers.
SCALE_LIMIT = (-(1 << 15), (1 << 15) - 1)

_REQUIRED = {
    "conv2d": {"name", "type", "out_channels", "kernel", "stride", "padding"},
    "conv3d": {"name", "type", "out_channels", "kernel", "stride", "padding"},
    "linear": {"name", "type", "out_features"},
    "flatten": {"name", "type"},
    "maxpool2d": {"name", "type", "kernel"},
    "avgpool2d": {"name", "type", "kernel"},
    "add": {"name", "type", "inputs"},
}
_OPTIONAL = {"conv2d": {"inputs", "output", "bn"}, "conv3d": {"inputs", "output", "bn"},
             "linear": {"inputs", "bn"},
             "flatten": {"inputs"}, "maxpool2d": {"inputs", "stride"},
             "avgpool2d": {"inputs", "stride"}, "add": set()}


def _check_spec(spec):
    kind = spec.get("type")
    if kind not in _REQUIRED:
        raise ValueError(f"layer spec {spec.get('name')!r} has type {kind!r}; QuantNet "
                         f"supports {', '.join(_REQUIRED)}")
    keys = set(spec)
    if not _REQUIRED[kind] <= keys or not keys <= _REQUIRED[kind] | _OPTIONAL[kind]:
        raise ValueError(f"layer spec {spec['name']!r} must have the keys "
                         f"{sorted(_REQUIRED[kind])} and may have {sorted(_OPTIONAL[kind])}")
    if spec.get("output", "spikes") not in ("spikes", "current"):
        raise ValueError(f"layer spec {spec['name']!r} has output {spec['output']!r}; "
                         f"expected 'spikes' or 'current'")


class QuantNet(nn.Module):
    """Conv/linear/pool/residual network with float and quantization-aware forward passes.

    Parameters
    ----------
    in_shape : tuple
        Per-sample input shape, e.g. ``(1, 8, 8)``.
    specs : list of dict
        Layer specs in topological order (module docstring). The last one must be the
        ``linear`` or ``conv2d`` output layer.
    input_scale : float
        Real value of one input integer (``InputSpec.scale``); the network is fed
        ``pixels * input_scale``.
    timesteps, levels : int
        SNN timesteps ``T`` and quantized-ReLU levels ``L``.
    weight_bits, bias_bits, membrane_bits : int
        Integer widths of the exported SNN (``weight_bits`` 2..8).
    """

    def __init__(self, in_shape, specs, *, input_scale, timesteps, levels, weight_bits=8,
                 bias_bits=16, membrane_bits=16):
        super().__init__()
        low, high = WEIGHT_BITS
        if not low <= int(weight_bits) <= high:
            raise ValueError(f"weight_bits is {weight_bits}, outside the supported range "
                             f"{low}..{high}")
        self.in_shape = tuple(in_shape)
        self.specs = [dict(s) for s in specs]
        self.input_scale = float(input_scale)
        self.timesteps, self.levels = int(timesteps), int(levels)
        self.weight_bits, self.bias_bits = int(weight_bits), int(bias_bits)
        self.membrane_bits = int(membrane_bits)
        self.mode = "float"
        self.synaptic = nn.ModuleDict()
        self.norms = nn.ModuleDict()
        shapes = {"input": self.in_shape}
        previous = "input"
        for spec in self.specs:
            _check_spec(spec)
            name, kind = spec["name"], spec["type"]
            if name in shapes:
                raise ValueError(f"layer spec name {name!r} is used twice (or is 'input')")
            sources = list(spec.get("inputs", [previous]))
            unknown = [s for s in sources if s not in shapes]
            if unknown or (kind != "add" and len(sources) != 1) or len(sources) < 1:
                raise ValueError(f"layer spec {name!r} reads {sources}; a layer reads one "
                                 f"earlier layer (an add two or more)")
            spec["sources"] = sources
            shape = shapes[sources[0]]
            if kind in ("conv2d", "conv3d"):
                dims = 2 if kind == "conv2d" else 3
                if len(shape) != dims + 1:
                    raise ValueError(f"{kind} layer {name!r} reads a tensor of shape {shape}")
                conv, norm = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d,
                                                                            nn.BatchNorm3d)
                module = conv(shape[0], spec["out_channels"], spec["kernel"],
                              stride=spec["stride"], padding=spec["padding"])
                size = [(s + 2 * spec["padding"] - spec["kernel"]) // spec["stride"] + 1
                        for s in shape[1:]]
                shape = (spec["out_channels"], *size)
                self.synaptic[name] = module
                if spec.get("bn"):
                    self.norms[name] = norm(spec["out_channels"])
            elif kind == "linear":
                if len(shape) != 1:
                    raise ValueError(f"linear layer {name!r} needs a flatten before it")
                self.synaptic[name] = nn.Linear(shape[0], spec["out_features"])
                shape = (spec["out_features"],)
                if spec.get("bn"):
                    self.norms[name] = nn.BatchNorm1d(spec["out_features"])
            elif kind in ("maxpool2d", "avgpool2d"):
                stride = spec.get("stride", spec["kernel"])
                shape = (shape[0], *[conv_output_size(s, spec["kernel"], stride, 0)
                                     for s in shape[1:]])
            elif kind == "flatten":
                shape = (int(torch.tensor(shape).prod()),)
            else:
                if any(shapes[s] != shape for s in sources):
                    raise ValueError(f"the inputs of add {name!r} have different shapes")
            spec["out_shape"] = shape
            shapes[name] = shape
            previous = name
        names = list(self.synaptic)
        if not names or self.specs[-1]["name"] != names[-1]:
            raise ValueError("the last layer spec must be the conv2d or linear output layer")
        self.output_name = names[-1]
        self._check_currents()
        #: Layers with a neuron and a learnable clip value: hidden spiking layers and adds.
        self.hidden = [s["name"] for s in self.specs
                       if (s["name"] in self.synaptic and s["name"] != self.output_name
                           and s.get("output", "spikes") == "spikes") or s["type"] == "add"]
        #: Learnable clip value lambda of each hidden layer (set by calibrate()).
        self.lams = nn.ParameterDict({n: nn.Parameter(torch.tensor(1.0)) for n in self.hidden})
        #: Bound on |logit| used for the output layer's headroom (set by calibrate()).
        self.register_buffer("out_bound", torch.tensor(1.0))

    def _check_currents(self):
        """A current-output layer must be read by exactly one layer, and that an add."""
        self.add_of = {}
        for spec in self.specs:
            if spec.get("output") != "current":
                continue
            readers = [s for s in self.specs if spec["name"] in s["sources"]]
            if len(readers) != 1 or readers[0]["type"] != "add":
                raise ValueError(f"layer spec {spec['name']!r} outputs 'current', so exactly one "
                                 f"add must read it")
            self.add_of[spec["name"]] = readers[0]["name"]

    # ------------------------------------------------------------------ quantization

    @torch.no_grad()
    def fold_batchnorm(self):
        """Fold every batch norm into its layer's weight and bias (eval statistics), then drop it.

        ``W' = W * g / sqrt(var + eps)``, ``b' = (b - mean) * g / sqrt(var + eps) + beta``; the
        float network computes the same function afterwards (up to float rounding).
        """
        for name, norm in self.norms.items():
            module = self.synaptic[name]
            factor = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            shape = (-1,) + (1,) * (module.weight.dim() - 1)
            module.weight.mul_(factor.reshape(shape))
            module.bias.copy_((module.bias - norm.running_mean) * factor + norm.bias)
        self.norms = nn.ModuleDict()

    def quant_layers(self):
        """Integer scaling of every synaptic layer and every add, in spec order (a dict by name).

        Synaptic layers map to :class:`LayerQuant`; an add maps to a dict with ``unit``,
        ``threshold``, ``lam`` and per input ``scales`` (exact integers) and ``factors`` (what
        the quantized forward pass multiplies a spike input's value by: ``scale * unit / s``).
        Layer 1 reads pixels (``s_in = input_scale``); a later layer reads spikes that stand for
        its source's quantized clip value ``lam`` (pools and flatten pass it on). The layers an
        add sums share one current unit, so the add's integer sum is exact (see
        :mod:`spikeforge.train.convert`). This is the one computation both the quantized forward
        pass and the exporter use.
        """
        widths = dict(weight_bits=self.weight_bits, membrane_bits=self.membrane_bits)
        result = {}
        value = {"input": self.input_scale}   # real value one spike (or pixel step) stands for
        for spec in self.specs:
            name, kind = spec["name"], spec["type"]
            if kind in ("maxpool2d", "avgpool2d", "flatten"):
                value[name] = value[spec["sources"][0]]
            elif kind == "add":
                lam = self.lams[name].clamp(min=1e-3)
                currents = [s for s in spec["sources"] if s in self.add_of]
                units = [current_unit(self.synaptic[c].weight, value[self._source(c)], lam,
                                      **widths) for c in currents]
                unit = torch.stack(units).max() if units else lam.detach() / (
                    1 << (self.membrane_bits - 2))
                for c in currents:
                    module = self.synaptic[c]
                    result[c] = layer_quant(module.weight, module.bias, value[self._source(c)],
                                            None, unit=unit, bias_bits=self.bias_bits, **widths)
                threshold, lam_q = add_threshold(lam, unit, self.membrane_bits)
                scales, factors = [], []
                for source in spec["sources"]:
                    if source in self.add_of:
                        scales.append(torch.ones_like(unit))
                        factors.append(None)
                    else:
                        scale = torch.clamp(round_half_up(value[source] / unit), *SCALE_LIMIT)
                        scales.append(scale)
                        factors.append(scale * unit / value[source])
                result[name] = {"unit": unit, "threshold": threshold, "lam": lam_q,
                                "scales": scales, "factors": factors}
                value[name] = lam_q.detach()
            elif name in self.synaptic and name not in self.add_of:
                module = self.synaptic[name]
                hidden = name in self.lams
                lam = self.lams[name].clamp(min=1e-3) if hidden else None
                bound = lam if hidden else self.timesteps * self.out_bound
                q = layer_quant(module.weight, module.bias, value[spec["sources"][0]], bound,
                                lam=lam, bias_bits=self.bias_bits, **widths)
                result[name] = q
                if hidden:
                    value[name] = q.lam.detach()
        return {s["name"]: result[s["name"]] for s in self.specs if s["name"] in result}

    def _source(self, name):
        return next(s for s in self.specs if s["name"] == name)["sources"][0]

    # ------------------------------------------------------------------ forward passes

    def _synapse(self, spec, module, h, weight, bias):
        if spec["type"] == "conv2d":
            return F.conv2d(h, weight, bias, stride=module.stride, padding=module.padding)
        if spec["type"] == "conv3d":
            return F.conv3d(h, weight, bias, stride=module.stride, padding=module.padding)
        return F.linear(h, weight, bias)

    def forward(self, x, *, record=False):
        """Logits for real-valued inputs ``x`` (N, *in_shape) in the current ``mode``.

        With ``record=True`` also return the list of hidden activations (after the (q)ReLU)
        of the layers in :attr:`hidden`, in order.
        """
        quant = None
        if self.mode == "quant":
            if len(self.norms):
                raise RuntimeError("fold the batch norms (fold_batchnorm) before quantized use")
            quant = self.quant_layers()
        hidden = []
        out = {"input": x}
        h = x
        for spec in self.specs:
            name, kind = spec["name"], spec["type"]
            source = out[spec["sources"][0]]
            if kind == "flatten":
                h = torch.flatten(source, 1)
            elif kind == "maxpool2d":
                h = F.max_pool2d(source, spec["kernel"], spec.get("stride", spec["kernel"]))
            elif kind == "avgpool2d":
                stride = spec.get("stride", spec["kernel"])
                if quant is None:
                    h = F.avg_pool2d(source, spec["kernel"], stride)
                else:
                    lam = self._spike_value(quant, spec["sources"][0])
                    h = qavgpool(source, lam, self.levels, (spec["kernel"],) * 2, (stride,) * 2)
            elif kind == "add":
                h = self._add(spec, out, None if quant is None else quant[name])
            else:
                module = self.synaptic[name]
                if quant is None:
                    h = self._synapse(spec, module, source, module.weight, module.bias)
                    if name in self.norms:
                        h = self.norms[name](h)
                    if name in self.lams:
                        h = F.relu(h)
                else:
                    q = quant[name]
                    h = self._synapse(spec, module, source, q.weight_q, q.bias_q)
                    if name in self.lams:
                        h = qrelu(h, q.lam, self.levels)
            out[name] = h
            if name in self.lams:
                hidden.append(h)
        return (h, hidden) if record else h

    def _add(self, spec, out, q):
        terms = []
        for index, source in enumerate(spec["sources"]):
            if q is None or q["factors"][index] is None:
                terms.append(out[source])
            else:
                terms.append(out[source] * q["factors"][index])
        total = torch.stack(terms).sum(dim=0)
        return F.relu(total) if q is None else qrelu(total, q["lam"], self.levels)

    def _spike_value(self, quant, name):
        """Quantized clip value that one spike of layer ``name`` stands for (pools follow)."""
        while name not in quant:
            name = self._source(name)
        entry = quant[name]
        return entry["lam"] if isinstance(entry, dict) else entry.lam

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
