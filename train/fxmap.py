"""Map a user's float PyTorch module onto :class:`~spikeforge.train.qnet.QuantNet` layer specs.

:func:`map_module` traces the module with ``torch.fx`` and walks its graph once, in order,
tracking what each value is:

``input``
    the network input (the direct-encoded pixels times the pixel step);
``pre``
    the output of a ``Conv2d`` / ``Conv3d`` / ``Linear`` (after its ``BatchNorm``, if any),
    before any activation;
``act``
    a ReLU output, or a pool or flatten of one: a spike train in the SNN;
``sum``
    a residual ``+`` that a ReLU has not yet followed.

The mapping:

- ``Conv2d`` / ``Conv3d`` / ``Linear`` reading ``input`` or ``act``: a synaptic layer
  (``conv2d`` / ``conv3d`` / ``linear``); ``groups = 1``, no dilation, zero padding, equal
  kernel, stride and padding on every axis (the contract's square kernels);
- ``BatchNorm1d/2d/3d`` straight after one: folded into it (``bn``, folded after float
  training by :meth:`~spikeforge.train.qnet.QuantNet.fold_batchnorm`);
- ``ReLU`` (module, ``F.relu``, ``torch.relu``, ``.relu()``) after a ``pre`` value: the
  layer's quantized ReLU, which becomes its IF neuron; after a ``sum``: the add's neuron;
  after an ``act`` or the input (both non-negative): the identity, dropped;
- ``MaxPool2d`` / ``AvgPool2d`` (no padding, no dilation, no ``ceil_mode``) and
  ``AdaptiveAvgPool2d(1)`` (an average pool over the whole, square map) of an ``act`` value;
- ``nn.Flatten()`` / ``torch.flatten(x, 1)`` / ``x.flatten(1)``; ``Dropout`` and
  ``Identity``: dropped;
- ``a + b`` of two values (each a ``pre`` value read by nothing else, which becomes a
  ``"current"`` layer, or an ``act`` value), followed by a ReLU: an ``add``;
- the module's output must be the ``pre`` value of its last synaptic layer: the
  integrate-without-firing output layer.

Anything else raises :class:`UnmappableModule` (a ``ValueError``) naming the module's qualified
name and type and why, before any training starts.
"""

import operator
from dataclasses import dataclass, field

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["UnmappableModule", "MappedModule", "map_module"]

#: What the mapper accepts, for the messages.
SUPPORTED = ("Conv2d, Conv3d, Linear, ReLU, BatchNorm, AvgPool2d, MaxPool2d, "
             "AdaptiveAvgPool2d(1), Flatten, Dropout and residual +")
_ACTIVATIONS = (nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.ReLU6,
                nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.Softplus, nn.PReLU,
                nn.SELU, nn.CELU, nn.Softmax, nn.LogSoftmax, nn.GLU, nn.Threshold)
_DROPPED = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_)
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_FLATTEN_FUNCTIONS = (torch.flatten,)
_DROPOUT_FUNCTIONS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d)


class UnmappableModule(ValueError):
    """A module (or graph node) that spikeforge cannot map; the message is one sentence."""


@dataclass
class MappedModule:
    """What :func:`map_module` returns.

    Members
    -------
    specs : list of dict
        QuantNet layer specs in order.
    synaptic : dict
        Spec name -> the user's ``Conv2d`` / ``Conv3d`` / ``Linear`` module.
    norms : dict
        Spec name -> the user's batch norm folded into that layer.
    sources : dict
        Spec name -> the user's qualified module (or node) name it came from.
    """

    specs: list
    synaptic: dict = field(default_factory=dict)
    norms: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)


def _refuse(name, kind, why):
    raise UnmappableModule(f"{name} ({kind}): {why}")


def _same(value, dims, name, kind, what):
    """A per-axis tuple or int as one int; refuse unequal axes."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims
    if isinstance(values[0], str) or len(set(values)) != 1:
        _refuse(name, kind, f"its {what} {value!r} differs between axes or is not an integer; "
                            f"the accelerator's kernels use one {what} on every axis")
    return int(values[0])


@dataclass
class _Value:
    state: str                 # "input", "pre", "act" or "sum"
    layer: str | None          # spec producing it ("input" for the input)
    shape: tuple               # per-sample shape
    origin: str                # qualified name for messages


def _function_name(target):
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", repr(target))
    return f"{module.replace('torch.nn.functional', 'F')}.{name}".lstrip(".")


class _Mapper:
    def __init__(self, module, example):
        self.module = module
        try:
            self.graph = torch.fx.symbolic_trace(module)
        except Exception as error:  # fx raises many kinds (TraceError, TypeError, ...)
            text = " ".join(str(error).split()).rstrip(".")
            raise UnmappableModule(f"module ({type(module).__name__}): torch.fx cannot trace "
                                   f"it ({text})") from None
        self.modules = dict(self.graph.named_modules())
        self.result = MappedModule([])
        self.values = {}
        self.names = {"input"}
        placeholders = [n for n in self.graph.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            _refuse("module", type(module).__name__,
                    f"its forward takes {len(placeholders)} tensors; the accelerator runs "
                    f"networks of one input")
        self._shapes(example)

    def _shapes(self, example):
        from torch.fx.passes.shape_prop import ShapeProp

        training = self.module.training
        self.graph.eval()
        try:
            with torch.no_grad():
                ShapeProp(self.graph).propagate(example)
        except Exception as error:
            cause = error.__cause__ or error   # ShapeProp wraps the module's own error
            text = " ".join(str(cause).split()).rstrip(".")
            raise UnmappableModule(f"module ({type(self.module).__name__}): it does not run "
                                   f"on an input of shape {tuple(example.shape[1:])} "
                                   f"({type(cause).__name__}: {text})") from None
        finally:
            self.graph.train(training)

    def _name(self, qualified, kind):
        """A bundle layer name from the qualified name (``features.0`` -> ``features_0``;
        a bare index, as in a plain ``nn.Sequential``, gets the layer type: ``conv2d_0``)."""
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in qualified) or kind
        if not (base[0].isalpha() or base[0] == "_"):
            base = f"{kind}_{base}"
        name, index = base, 1
        while name in self.names:
            index += 1
            name = f"{base}_{index}"
        self.names.add(name)
        return name

    @staticmethod
    def _out_shape(node):
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape[1:]) if meta is not None and hasattr(meta, "shape") else None

    def _spec(self, spec, origin, source):
        if source.layer != self._previous():
            spec["inputs"] = [source.layer]
        self.result.specs.append(spec)
        self.result.sources[spec["name"]] = origin
        return spec

    def _previous(self):
        return self.result.specs[-1]["name"] if self.result.specs else "input"

    def _arg(self, node, index=0):
        arg = node.args[index] if len(node.args) > index else None
        if not isinstance(arg, torch.fx.Node):
            return None
        return self.values.get(arg)

    def _only_user(self, node, reader):
        """The ``pre`` value of ``node``'s input must be read by ``reader`` alone."""
        source = node.args[0]
        if len(source.users) != 1:
            other = next(u for u in source.users if u is not reader)
            _refuse(self._label(other), self._kind(other),
                    f"it reads {source.name} before its activation, which another layer also "
                    f"reads; a layer's pre-activation output may have one reader")

    def _label(self, node):
        return node.target if node.op == "call_module" else node.name

    def _kind(self, node):
        if node.op == "call_module":
            return type(self.modules[node.target]).__name__
        if node.op == "call_method":
            return f"Tensor.{node.target}"
        return _function_name(node.target)

    # ------------------------------------------------------------------ the walk

    def run(self):
        for node in self.graph.graph.nodes:
            if node.op == "placeholder":
                shape = self._out_shape(node)
                self.values[node] = _Value("input", "input", shape, "input")
            elif node.op == "output":
                self._output(node)
            elif node.op == "get_attr":
                _refuse(node.name, "get_attr", "its forward reads a parameter or buffer "
                        f"directly ({node.target}); only modules' own parameters are mapped")
            else:
                self.values[node] = self._node(node)
        return self.result

    def _node(self, node):
        name, kind = self._label(node), self._kind(node)
        inputs = [a for a in node.args if isinstance(a, torch.fx.Node)]
        for arg in inputs:
            if self.values[arg].state == "sum" and not self._is_relu(node):
                _refuse(name, kind, f"it reads the residual sum {arg.name}, which is not "
                                    f"followed by a ReLU; every residual + must be")
        if node.op == "call_module":
            return self._module(node, self.modules[node.target], name, kind)
        if self._is_relu(node):
            return self._relu(node, name, kind)
        if node.op == "call_function" and node.target in _ADD_FUNCTIONS:
            return self._add(node, name, kind)
        if node.op == "call_function" and node.target in _DROPOUT_FUNCTIONS:
            return self._arg(node)
        if (node.op == "call_function" and node.target in _FLATTEN_FUNCTIONS) or (
                node.op == "call_method" and node.target == "flatten"):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return self._flatten(node, name, kind, start, end)
        if node.op == "call_method" and node.target in ("view", "reshape"):
            _refuse(name, kind, "reshapes are not mapped; use nn.Flatten() or "
                                "torch.flatten(x, 1)")
        _refuse(name, kind, f"spikeforge has no layer for it (it maps {SUPPORTED})")

    def _is_relu(self, node):
        if node.op == "call_module":
            return isinstance(self.modules[node.target], nn.ReLU)
        if node.op == "call_function":
            return node.target in _RELU_FUNCTIONS
        return node.op == "call_method" and node.target in ("relu", "relu_")

    def _module(self, node, module, name, kind):
        source = self._arg(node)
        if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            return self._synaptic(node, module, name, kind, source)
        if isinstance(module, nn.ReLU):
            return self._relu(node, name, kind)
        if isinstance(module, _NORMS):
            return self._norm(node, module, name, kind, source)
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return self._pool(node, module, name, kind, source)
        if isinstance(module, nn.Flatten):
            return self._flatten(node, name, kind, module.start_dim, module.end_dim)
        if isinstance(module, _DROPPED):
            return source
        if isinstance(module, _ACTIVATIONS):
            _refuse(name, kind, "only ReLU activations convert to IF neurons")
        _refuse(name, kind, f"spikeforge has no layer for it (it maps {SUPPORTED})")

    def _synaptic(self, node, module, name, kind, source):
        if source is None or source.state not in ("input", "act"):
            what = "a residual sum" if source is not None and source.state == "sum" else (
                f"the output of {source.origin} before any activation" if source is not None
                else "no tensor")
            _refuse(name, kind, f"it reads {what}; a Conv or Linear layer reads the input or a "
                                f"ReLU output (put a ReLU between two synaptic layers)")
        kind_name = "linear" if isinstance(module, nn.Linear) else (
            "conv2d" if isinstance(module, nn.Conv2d) else "conv3d")
        spec_name = self._name(node.target, kind_name)
        if isinstance(module, nn.Linear):
            if len(source.shape) != 1:
                _refuse(name, kind, f"it reads a tensor of shape {source.shape}; flatten it "
                                    f"first (nn.Flatten())")
            spec = {"name": spec_name, "type": "linear", "out_features": module.out_features}
        else:
            dims = 2 if isinstance(module, nn.Conv2d) else 3
            if module.groups != 1:
                _refuse(name, kind, f"it has groups={module.groups}; only dense convolutions "
                                    f"(groups=1) are mapped")
            if any(d != 1 for d in module.dilation):
                _refuse(name, kind, f"it has dilation {module.dilation}; only undilated "
                                    f"convolutions are mapped")
            if module.padding_mode != "zeros":
                _refuse(name, kind, f"it pads with {module.padding_mode!r}; only zero padding "
                                    f"is mapped")
            kernel = _same(module.kernel_size, dims, name, kind, "kernel size")
            stride = _same(module.stride, dims, name, kind, "stride")
            padding = _same(module.padding, dims, name, kind, "padding")
            spec = {"name": spec_name, "type": f"conv{dims}d",
                    "out_channels": module.out_channels, "kernel": kernel, "stride": stride,
                    "padding": padding}
        self.result.synaptic[spec_name] = module
        self._spec(spec, node.target, source)
        return _Value("pre", spec_name, self._out_shape(node), node.target)

    def _norm(self, node, module, name, kind, source):
        if source is None or source.state != "pre" or source.layer in self.result.norms:
            _refuse(name, kind, "a batch norm folds only into the Conv or Linear layer "
                                "directly before it")
        if not module.track_running_stats:
            _refuse(name, kind, "it keeps no running statistics (track_running_stats=False), "
                                "so it cannot be folded into the layer before it")
        self._only_user(node, node)
        self.result.norms[source.layer] = module
        self._spec_by_name(source.layer)["bn"] = True
        return _Value("pre", source.layer, source.shape, name)

    def _spec_by_name(self, name):
        return next(s for s in self.result.specs if s["name"] == name)

    def _relu(self, node, name, kind):
        source = self._arg(node)
        if source is None:
            _refuse(name, kind, "it reads no tensor")
        if source.state in ("act", "input"):   # non-negative already: the identity
            return source
        self._only_user(node, node)
        if source.state == "sum":
            return _Value("act", source.layer, source.shape, name)
        return _Value("act", source.layer, source.shape, name)

    def _pool(self, node, module, name, kind, source):
        if source is None or source.state != "act":
            what = "the network input" if source is not None and source.state == "input" \
                else "a value before its activation"
            _refuse(name, kind, f"it pools {what}; pools map onto spike outputs, so put them "
                                f"after a ReLU")
        if len(source.shape) != 3:
            _refuse(name, kind, f"it pools a tensor of shape {source.shape}; only 2D maps "
                                f"(C, H, W) are pooled")
        spec_name = self._name(node.target, "maxpool2d" if isinstance(module, nn.MaxPool2d)
                               else "avgpool2d")
        if isinstance(module, nn.AdaptiveAvgPool2d):
            size = _same(module.output_size, 2, name, kind, "output size")
            if size != 1:
                _refuse(name, kind, f"its output size is {module.output_size}; only a global "
                                    f"average pool (output size 1) is mapped")
            height, width = source.shape[1:]
            if height != width:
                _refuse(name, kind, f"it averages a {height}x{width} map; only square maps "
                                    f"are pooled")
            spec = {"name": spec_name, "type": "avgpool2d", "kernel": int(height)}
        else:
            kernel = _same(module.kernel_size, 2, name, kind, "kernel size")
            stride = _same(module.stride if module.stride is not None else kernel, 2, name,
                           kind, "stride")
            if _same(module.padding, 2, name, kind, "padding") != 0 or module.ceil_mode:
                _refuse(name, kind, "it pads or uses ceil_mode; pools map without padding")
            if isinstance(module, nn.MaxPool2d):
                if _same(module.dilation, 2, name, kind, "dilation") != 1:
                    _refuse(name, kind, "it is dilated; pools map without dilation")
                if module.return_indices:
                    _refuse(name, kind, "it returns indices; pools map without them")
            elif module.divisor_override is not None:
                _refuse(name, kind, "it overrides the divisor; an average pool maps with "
                                    "the window size")
            spec = {"name": spec_name,
                    "type": "maxpool2d" if isinstance(module, nn.MaxPool2d) else "avgpool2d",
                    "kernel": kernel}
            if stride != kernel:
                spec["stride"] = stride
        self._spec(spec, node.target, source)
        return _Value("act", spec_name, self._out_shape(node), node.target)

    def _flatten(self, node, name, kind, start, end):
        source = self._arg(node)
        if source is None or source.state not in ("act", "input"):
            _refuse(name, kind, "it flattens a value before its activation; put a ReLU before "
                                "it (a flatten maps onto spikes)")
        if start != 1 or end != -1:
            _refuse(name, kind, f"it flattens dimensions {start}..{end}; only flatten from "
                                f"dimension 1 to the end is mapped")
        spec_name = self._name(node.target if node.op == "call_module" else node.name,
                               "flatten")
        self._spec({"name": spec_name, "type": "flatten"}, name, source)
        return _Value(source.state, spec_name, self._out_shape(node), name)

    def _add(self, node, name, kind):
        args = list(node.args)
        if len(args) != 2 or not all(isinstance(a, torch.fx.Node) for a in args) or node.kwargs:
            _refuse(name, kind, "a residual + must add two tensors of the network (no "
                                "constants, no alpha)")
        values = [self.values[a] for a in args]
        for arg, value in zip(args, values):
            if value.state not in ("pre", "act"):
                _refuse(name, kind, f"it adds {arg.name}, which is neither a Conv's output "
                                    f"before its activation nor a ReLU output")
            if value.state == "pre":
                if len(arg.users) != 1:
                    _refuse(name, kind, f"it adds {arg.name} before its activation, which "
                                        f"another layer also reads")
                spec = self._spec_by_name(value.layer)
                if spec["type"] == "linear":
                    _refuse(name, kind, "residual adds of Linear layers are not mapped")
                spec["output"] = "current"
        if values[0].shape != values[1].shape:
            _refuse(name, kind, f"it adds shapes {values[0].shape} and {values[1].shape}")
        spec_name = self._name(node.name, "add")
        self.result.specs.append({"name": spec_name, "type": "add",
                                  "inputs": [v.layer for v in values]})
        self.result.sources[spec_name] = node.name
        return _Value("sum", spec_name, values[0].shape, node.name)

    def _output(self, node):
        result = node.args[0]
        if not isinstance(result, torch.fx.Node):
            _refuse("module", type(self.module).__name__,
                    "its forward returns more than one tensor; it must return the logits")
        value = self.values[result]
        last = [s for s in self.result.specs if s["type"] in ("conv2d", "conv3d", "linear")]
        if value.state != "pre" or not last or value.layer != self.result.specs[-1]["name"]:
            _refuse(self._label(result), self._kind(result),
                    "the network must end in a Conv or Linear layer without activation: its "
                    "output layer integrates without firing")


def map_module(module, example):
    """Map ``module`` onto QuantNet layer specs; raise :class:`UnmappableModule` if it cannot.

    Parameters
    ----------
    module : torch.nn.Module
    example : torch.Tensor
        A batch of (at least one) inputs, for the shapes.

    Returns
    -------
    MappedModule
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_torch needs a torch.nn.Module, not {module!r}")
    return _Mapper(module, example).run()
