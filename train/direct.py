"""Direct SNN training (ACE-SNN / DIET-SNN style) whose forward pass *is* the integer SNN.

:class:`DirectSNN` holds a chain of ``conv3d`` / ``conv2d`` / ``linear`` / ``flatten`` /
``maxpool2d`` layers (optional batch norm during float training; the max-pool is a max of
activations in the ANN modes and the contract's OR of spikes in the SNN) and runs in three
modes sharing one set of parameters: weights ``W``, biases ``b`` and, per hidden layer, a
threshold ``theta`` (the real value one spike stands for) and a leak factor ``beta``.

``mode="ann"``
    The float ANN (ReLU after every synaptic layer but the last): the float baseline.
``mode="qann"``
    The quantized ANN of the conversion route: weights and biases fake-quantized exactly as the
    SNN uses them, and every ReLU a quantized ReLU with clip ``theta`` and ``L = T`` levels
    (:func:`spikeforge.train.quant.qrelu`), what an IF neuron with threshold ``theta`` and
    initial membrane ``theta / 2`` emits over ``T`` steps of a constant input.
``mode="snn"``
    Surrogate-gradient backpropagation through time of the spiking network, computed in the
    contract's integers (``docs/neuron.md``) held in float32 tensors, so the forward pass is
    bit-exact with the exported bundle:

    - **direct (analog) input encoding**: the first layer's current ``I_1 = conv(x - z, W_1) +
      b_1`` of the pixels ``x`` (zero point ``z``) is computed once per image and added at
      every timestep; there is no spike encoder;
    - **quantization-aware weights** (the integer scaling of :mod:`spikeforge.train.quant`):
      ``unit = max(w_scale(W) * s_in, theta / 2**(B-2))``, ``w_scale`` being
      ``max|W| / (2**(bits-1) - 1)`` or, for ternary 2-bit weights, ``1.4 mean|W|``
      (:func:`spikeforge.train.quant.weight_scale`) (the second term
      for hidden layers only, so the threshold fits the membrane with a factor 2 of headroom),
      ``step = unit / s_in``, with ``s_in`` the pixel step for the first layer and the
      quantized threshold ``theta_{l-1}`` of the layer read otherwise (a spike stands for it);
      ``W_int = round(W / step)``, ``b_int = round(b / unit)``, all straight-through;
      with ``shift_currents`` the second term is dropped instead: the weights keep
      ``w_scale(W) * s_in`` and the layer's ``current_shift`` ``k`` (the smallest with
      ``theta / (unit * 2**k) <= 2**(B-2)``) makes the membrane step ``unit * 2**k``;
      ``2**(k-1)`` added to ``b_int`` turns the shift's floor into rounding;
    - **learnable per-layer threshold and leak**: ``theta_int = round(theta / unit)`` and the
      multiplicative leak ``f = round(beta * 2**q)`` (``leak(V) = (V * f) >> q``, the contract's
      ``mul`` leak), straight-through, ``beta`` clipped to ``0..1``;
    - the neuron and its hand-written BPTT are :mod:`spikeforge.train.lif` (reset by
      subtraction, initial membrane ``theta >> 1`` or 0, DIET-SNN's linear surrogate for the
      spike; the membrane saturates at ``B`` bits as in the contract, and ``surrogate``
      chooses its gradient: zero when saturated, or SpQuant-SNN's stacked sigmoids, which
      suit narrow membranes);
    - the last layer integrates without firing; its final membrane times ``unit / T`` are the
      logits of the cross-entropy loss, and its argmax is the prediction.

    Float32 holds every value exactly: currents stay below ``2**24`` (checked by
    :meth:`DirectSNN.check_exact`), membranes below ``2**(B-1)`` with ``B <= 16`` and a leak
    product below ``2**(B-1+q) <= 2**23``.

The usual sequence: train ``ann``; :meth:`~DirectSNN.fold_batchnorm`; :meth:`~DirectSNN.calibrate`
(``theta`` from activation percentiles); train ``qann``; train ``snn`` (leaks start at 1, i.e.
integrate-and-fire); export with :func:`network_parts`, which stores the integers of the SNN
mode (the zero point folded into the first bias, ``b_int - z * sum(W_int)``, exact because the
first layer is unpadded). Training ``snn`` straight after :meth:`~DirectSNN.calibrate` is direct
training from the ANN's initialisation (DIET-SNN's hybrid start).
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.golden.bundle import FORMAT_NAME, FORMAT_VERSION
from spikeforge.golden.manifest import WEIGHT_BITS
from spikeforge.golden.network import CURRENT_SHIFTS, smallest_shift

from .lif import SHARPNESS, SURROGATES, lif
from .presets import DIRECT_MEMBRANE_BITS
from .quant import qrelu, ste_round, theta_max, weight_scale

__all__ = ["MODES", "DirectSNN", "network_parts", "mode_optimizer"]

_CONV = {"conv2d": (2, F.conv2d, nn.Conv2d, nn.BatchNorm2d),
         "conv3d": (3, F.conv3d, nn.Conv3d, nn.BatchNorm3d)}
_KEYS = {"conv2d": {"out_channels", "kernel", "stride", "padding"},
         "conv3d": {"out_channels", "kernel", "stride", "padding"},
         "linear": {"out_features"}, "flatten": {"start_dim", "end_dim"},
         "maxpool2d": {"kernel"}}
#: Keys a spec of the type may leave out (their defaults are set by DirectSNN).
_OPTIONAL = {"flatten": {"start_dim", "end_dim"}, "maxpool2d": {"stride"}}
MODES = ("ann", "qann", "snn")


def _tuple(value, dims):
    return tuple(value) if isinstance(value, (list, tuple)) else (int(value),) * dims


class DirectSNN(nn.Module):
    """Chain of conv3d / conv2d / linear / flatten / maxpool2d layers: float ANN, quantized
    ANN, SNN.

    Parameters
    ----------
    in_shape : tuple
        Per-sample input shape, e.g. ``(1, 16, 11, 11)`` for conv3d.
    specs : list of dict
        ``{"name", "type"}`` plus: conv ``out_channels``, ``kernel``, ``stride``, ``padding``
        (ints or per-axis lists; the first layer must be unpadded when ``input_zero`` is not
        0); linear ``out_features``; optional ``bn`` (batch norm in float training) on both;
        flatten optional ``start_dim`` / ``end_dim`` (per-sample axes, like the bundle);
        maxpool2d ``kernel``, optional ``stride`` (default: the kernel), on (C, H, W) maps.
        The last spec must be the linear output layer.
    input_scale : float
        Real value of one input integer step.
    input_zero : int
        Integer subtracted from the pixels before the first layer (folded into its bias).
    input_bits : int
        Width of the unsigned input pixels (for the exactness check).
    timesteps, weight_bits, bias_bits, membrane_bits : int
    leak_frac_bits : int
        ``q`` of the multiplicative leak (``membrane_bits - 1 + q <= 23``).
    learn_leak : bool
        Train ``beta`` in SNN mode (else the neurons stay integrate-and-fire).
    v_init : {"half", "zero"}
    gamma : float
        Surrogate-gradient height.
    surrogate : str
        The saturating membrane's gradient in SNN mode, one of
        :data:`spikeforge.train.lif.SURROGATES` (``"stacked"``: SpQuant-SNN's sum of sigmoid
        derivatives, one per step between membrane levels, with sharpness ``sharpness``).
    shift_currents : bool
        Keep the weights at their own scale and give each layer a ``current_shift`` ``k``
        instead (``docs/neuron.md`` section 2): a membrane step is ``2**k`` current steps,
        ``k`` the smallest that fits ``theta`` into ``theta_max(membrane_bits)`` steps, and
        ``2**(k-1)`` is added to the bias so that the shift rounds. Without it (the shipped
        16-bit presets) a threshold too large for the membrane coarsens the weights' step,
        which a narrow membrane cannot afford. The output layer's shift is
        :attr:`output_shift` (:meth:`calibrate_output_shift`).
    output_membrane_bits : int, optional
        The output layer's own membrane width (the bundle's ``neuron.membrane_bits``), at
        least ``membrane_bits``; default ``membrane_bits``. The output layer sums all ``T``
        timesteps, so at a hidden width of a few bits the sum of the steps' shifted currents
        would round each step's current to nothing; ``classes`` wider neurons cost a few bytes.
    """

    def __init__(self, in_shape, specs, *, input_scale, input_zero=0, input_bits=8,
                 timesteps, weight_bits=6, bias_bits=24, membrane_bits=16, leak_frac_bits=8,
                 learn_leak=True, v_init="half", gamma=0.3, surrogate="linear",
                 sharpness=SHARPNESS, shift_currents=False, output_membrane_bits=None):
        super().__init__()
        if not WEIGHT_BITS[0] <= weight_bits <= WEIGHT_BITS[1]:
            raise ValueError(f"weight_bits is {weight_bits}, outside the supported range "
                             f"{WEIGHT_BITS[0]}..{WEIGHT_BITS[1]}")
        low, high = DIRECT_MEMBRANE_BITS
        if not low <= membrane_bits <= high or membrane_bits - 1 + leak_frac_bits > 23:
            raise ValueError(f"membrane_bits {membrane_bits} with leak_frac_bits "
                             f"{leak_frac_bits} would leave float32's exact range")
        output_bits = membrane_bits if output_membrane_bits is None else output_membrane_bits
        if not membrane_bits <= output_bits <= high:
            raise ValueError(f"output_membrane_bits is {output_membrane_bits}, outside "
                             f"{membrane_bits}..{high} (the hidden width up to the largest)")
        if v_init not in ("half", "zero"):
            raise ValueError(f"v_init is {v_init!r}; expected 'half' or 'zero'")
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate is {surrogate!r}; expected one of "
                             f"{', '.join(SURROGATES)}")
        self.in_shape, self.specs = tuple(in_shape), [dict(s) for s in specs]
        self.input_scale, self.input_zero = float(input_scale), int(input_zero)
        self.input_bits = int(input_bits)
        self.timesteps, self.weight_bits = int(timesteps), int(weight_bits)
        self.bias_bits, self.membrane_bits = int(bias_bits), int(membrane_bits)
        self.output_membrane_bits = int(output_bits)
        self.leak_frac_bits, self.learn_leak = int(leak_frac_bits), bool(learn_leak)
        self.v_init, self.gamma, self.mode = v_init, float(gamma), "ann"
        self.surrogate, self.sharpness = surrogate, float(sharpness)
        self.shift_currents = bool(shift_currents)
        #: ``current_shift`` of the output layer (with ``shift_currents``; 0 until calibrated).
        self.output_shift = 0
        self.synaptic, self.norms = nn.ModuleDict(), nn.ModuleDict()
        shape = self.in_shape
        for spec in self.specs:
            shape = self._add_layer(spec, shape)
            spec["out_shape"] = shape
        names = list(self.synaptic)
        if not names or self.specs[-1]["name"] != names[-1] or self.specs[-1]["type"] != "linear":
            raise ValueError("the last layer spec must be the linear output layer")
        if self.input_zero and any(self.specs[0].get("padding", (0,))):
            raise ValueError("a non-zero input_zero needs an unpadded first layer")
        self.output_name, self.hidden = names[-1], names[:-1]
        #: Threshold (clip value) of each hidden layer in real units (set by calibrate()).
        self.thetas = nn.ParameterDict({n: nn.Parameter(torch.tensor(1.0)) for n in self.hidden})
        #: Multiplicative leak factor beta of each hidden layer (1 = no leak).
        self.betas = nn.ParameterDict({n: nn.Parameter(torch.tensor(1.0)) for n in self.hidden})

    def _add_layer(self, spec, shape):
        kind, name = spec.get("type"), spec.get("name")
        if kind not in _KEYS:
            raise ValueError(f"layer spec {name!r} has type {kind!r}; DirectSNN supports "
                             f"{', '.join(_KEYS)}")
        optional = _OPTIONAL.get(kind, set())
        extra = set(spec) - {"name", "type", "bn"} - _KEYS[kind] - optional
        if extra or not (_KEYS[kind] - optional) <= set(spec) \
                or (kind in _OPTIONAL and "bn" in spec):
            raise ValueError(f"layer spec {name!r} must have the keys {sorted(_KEYS[kind])}")
        if kind == "maxpool2d":   # the contract's OR max-pool on spikes, a max on activations
            if len(shape) != 3:
                raise ValueError(f"max-pool {name!r} reads shape {shape}; it needs (C, H, W)")
            spec["kernel"] = _tuple(spec["kernel"], 2)
            spec["stride"] = _tuple(spec.get("stride", spec["kernel"]), 2)
            return (shape[0], *[(s - k) // st + 1 for s, k, st in
                                zip(shape[1:], spec["kernel"], spec["stride"])])
        if kind == "flatten":
            start = spec.setdefault("start_dim", 0)
            end = spec.setdefault("end_dim", len(shape) - 1)
            return shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:]
        if kind == "linear":
            if len(shape) != 1:
                raise ValueError(f"linear layer {name!r} needs a flatten before it")
            self.synaptic[name] = nn.Linear(shape[0], spec["out_features"])
            if spec.get("bn"):
                self.norms[name] = nn.BatchNorm1d(spec["out_features"])
            return (spec["out_features"],)
        dims, _, module, norm = _CONV[kind]
        if len(shape) != dims + 1:
            raise ValueError(f"layer spec {name!r} ({kind}) reads shape {shape}")
        for key in ("kernel", "stride", "padding"):
            spec[key] = _tuple(spec[key], dims)
        self.synaptic[name] = module(shape[0], spec["out_channels"], spec["kernel"],
                                     stride=spec["stride"], padding=spec["padding"])
        if spec.get("bn"):
            self.norms[name] = norm(spec["out_channels"])
        return (spec["out_channels"], *[(s + 2 * p - k) // st + 1 for s, k, st, p in
                                        zip(shape[1:], spec["kernel"], spec["stride"],
                                            spec["padding"])])

    # ------------------------------------------------------------------ integer parameters

    def quant_layers(self):
        """Per synaptic layer a dict of integer-valued tensors (straight-through gradients).

        ``weight`` (W_int), ``bias`` (b_int), ``step``, ``unit`` (real value of one current
        step), ``shift`` (the layer's ``current_shift``, an int), ``membrane_unit`` (``unit *
        2**shift``, one membrane step) and, for hidden layers, ``threshold`` (theta_int),
        ``theta`` (``theta_int * membrane_unit``, straight-through to ``theta``) and
        ``factor`` (leak ``f``).
        """
        if len(self.norms):
            raise RuntimeError("fold the batch norms (fold_batchnorm) before quantized use")
        qmax = (1 << (self.weight_bits - 1)) - 1
        blow, bhigh = -(1 << (self.bias_bits - 1)), (1 << (self.bias_bits - 1)) - 1
        theta_high = theta_max(self.membrane_bits)
        one = 1 << self.leak_frac_bits
        result, s_in = {}, torch.tensor(self.input_scale)
        for name, module in self.synaptic.items():
            w = module.weight
            step = torch.clamp(weight_scale(w, 1.0, self.weight_bits),
                               min=torch.finfo(w.dtype).tiny)
            unit = step * s_in
            shift = self.output_shift if name == self.output_name else 0
            if name in self.thetas and self.shift_currents:
                shift = _shift_for(float(self.thetas[name].detach().abs() / unit), theta_high)
            elif name in self.thetas:   # coarser steps when theta would not fit the membrane
                unit = torch.maximum(unit, self.thetas[name].detach().abs() / theta_high)
                step = unit / s_in
            membrane_unit = unit * (1 << shift)
            rounding = (1 << shift) >> 1   # floor((I + 2**(k-1)) / 2**k) rounds I / 2**k
            entry = {"unit": unit, "step": step, "shift": shift, "membrane_unit": membrane_unit,
                     "weight": torch.clamp(ste_round(w / step), -qmax, qmax),
                     "bias": torch.clamp(ste_round(module.bias / unit) + rounding, blow,
                                         bhigh)}
            if name in self.thetas:
                theta = self.thetas[name]
                entry["threshold"] = torch.clamp(ste_round(theta / membrane_unit), 1,
                                                 theta_high)
                entry["theta"] = entry["threshold"] * membrane_unit
                # beta is used clipped to 0..1, but its gradient always passes (a gradient
                # pushing beta above 1 must not freeze it there).
                raw = self.betas[name]
                beta = raw + (torch.clamp(raw.detach(), 0.0, 1.0) - raw.detach())
                entry["factor"] = torch.clamp(ste_round(beta * one), 0, one)
                s_in = entry["theta"].detach()
            result[name] = entry
        return result

    def check_exact(self):
        """Raise when a layer's worst-case current could leave float32's exact range."""
        with torch.no_grad():
            quant = self.quant_layers()
        top = (1 << self.input_bits) - 1
        top = max(self.input_zero, top - self.input_zero)   # largest |x - z| of a pixel
        for index, (name, q) in enumerate(quant.items()):
            fan = q["weight"].abs().reshape(q["weight"].shape[0], -1).sum(dim=1).max()
            bound = float(fan) * (top if index == 0 else 1) + float(q["bias"].abs().max())
            if bound >= 1 << 24:
                raise ValueError(f"layer {name!r} can reach currents of {bound:.0f}, beyond "
                                 f"float32's exact 2**24")

    @torch.no_grad()
    def fold_batchnorm(self):
        """Fold every batch norm into its layer (eval statistics), then drop it."""
        for name, norm in self.norms.items():
            module = self.synaptic[name]
            factor = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            module.weight.mul_(factor.reshape((-1,) + (1,) * (module.weight.dim() - 1)))
            module.bias.copy_((module.bias - norm.running_mean) * factor + norm.bias)
        self.norms = nn.ModuleDict()

    @torch.no_grad()
    def calibrate(self, x, percentile=99.9):
        """``theta_l`` = the ``percentile`` of hidden layer ``l``'s positive float ReLU outputs
        on ``x``; leaks reset to 1. Returns the thresholds by layer name."""
        mode, self.mode = self.mode, "ann"
        _, hidden = self(x, record=True)
        self.mode = mode
        for name, act in zip(self.hidden, hidden):
            positive = act[act > 0]
            value = torch.quantile(positive[:1 << 24], percentile / 100.0) \
                if positive.numel() else torch.tensor(1.0)
            self.thetas[name].fill_(float(value))
            self.betas[name].fill_(1.0)
        return {name: float(self.thetas[name]) for name in self.hidden}

    @torch.no_grad()
    def calibrate_output_shift(self, x, percentile=99.9):
        """Set :attr:`output_shift` (with ``shift_currents``) from the quantized ANN's output
        on ``x``: the smallest shift that keeps the ``percentile`` of ``T * max(logits)`` per
        sample (the winning class's output membrane in a rate-coded SNN) within the
        membrane; the losers may saturate at the bottom without changing the argmax.
        Returns it."""
        if not self.shift_currents:
            return 0
        mode, self.mode = self.mode, "qann"
        self.output_shift = 0
        logits = self(x)
        self.mode = mode
        unit = float(self.quant_layers()[self.output_name]["unit"])
        peak = float(torch.quantile(logits.max(dim=1).values.clamp(min=0), percentile / 100.0))
        self.output_shift = _shift_for(self.timesteps * peak / unit,
                                       (1 << (self.output_membrane_bits - 1)) - 1)
        return self.output_shift

    def parameters_for(self, mode):
        """The parameters a mode trains (``ann``: no thresholds/leaks; ``qann``: no leaks)."""
        skip = set()
        if mode != "snn" or not self.learn_leak:
            skip |= {id(p) for p in self.betas.parameters()}
        if mode == "ann":
            skip |= {id(p) for p in self.thetas.parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    # ------------------------------------------------------------------ forward passes

    def _synapse(self, spec, x, weight, bias):
        if spec["type"] == "linear":
            return F.linear(x, weight, bias)
        return _CONV[spec["type"]][1](x, weight, bias, stride=spec["stride"],
                                      padding=spec["padding"])

    def forward(self, x, *, record=False):
        """Logits of integer pixels ``x`` (N, *in_shape) (float tensor of exact integers).

        ``record=True`` also returns the hidden activations (ANN modes, a list) or the spike
        trains ``(T, N, ...)`` by layer name (SNN mode).
        """
        if self.mode not in MODES:
            raise ValueError(f"mode is {self.mode!r}; expected one of {', '.join(MODES)}")
        if self.mode == "snn":
            return self._snn(x, record)
        quant = self.quant_layers() if self.mode == "qann" else None
        h, hidden = (x - self.input_zero) * self.input_scale, []
        for spec in self.specs:
            name = spec["name"]
            if spec["type"] == "flatten":
                h = torch.flatten(h, spec["start_dim"] + 1, spec["end_dim"] + 1)
                continue
            if spec["type"] == "maxpool2d":
                h = F.max_pool2d(h, spec["kernel"], spec["stride"])
                continue
            if quant is None:
                module = self.synaptic[name]
                h = self._synapse(spec, h, module.weight, module.bias)
                if name in self.norms:
                    h = self.norms[name](h)
                h = F.relu(h) if name != self.output_name else h
            else:
                q = quant[name]
                bias = q["bias"] - ((1 << q["shift"]) >> 1)   # without the rounding offset
                h = self._synapse(spec, h, q["weight"] * q["step"], bias * q["unit"])
                if name != self.output_name:
                    h = qrelu(h, q["theta"], self.timesteps)
            if name != self.output_name:
                hidden.append(h)
        return (h, hidden) if record else h

    def _snn(self, x, record):
        quant = self.quant_layers()
        timesteps, n = self.timesteps, x.shape[0]
        low, high = -(1 << (self.membrane_bits - 1)), (1 << (self.membrane_bits - 1)) - 1
        h, trains, first = x - self.input_zero, {}, True
        for spec in self.specs:
            name = spec["name"]
            if spec["type"] == "flatten":
                h = torch.flatten(h, spec["start_dim"] + 2, spec["end_dim"] + 2)
                continue
            if spec["type"] == "maxpool2d":   # OR of the window's spikes
                pooled = F.max_pool2d(h.reshape(timesteps * n, *h.shape[2:]), spec["kernel"],
                                      spec["stride"])
                h = pooled.reshape(timesteps, n, *pooled.shape[1:])
                continue
            q = quant[name]
            source = h if first else h.reshape(timesteps * n, *h.shape[2:])
            current = self._synapse(spec, source, q["weight"], q["bias"])
            if not first:
                current = current.reshape(timesteps, n, *current.shape[1:])
            if q["shift"]:   # what the membrane integrates: floor(I / 2**k), straight-through
                exact = current / (1 << q["shift"])
                current = exact + (torch.floor(exact) - exact).detach()
            if name == self.output_name:
                top = (1 << (self.output_membrane_bits - 1)) - 1
                v = torch.zeros_like(current[0])
                for t in range(timesteps):
                    v = torch.clamp(v + current[t], -top - 1, top)
                logits = v * q["membrane_unit"] / timesteps
                return (logits, trains) if record else logits
            theta = q["threshold"]
            v0 = int(theta.detach()) >> 1 if self.v_init == "half" else 0
            h = lif(current, theta, q["factor"], timesteps=timesteps, constant=first, v0=v0,
                    low=low, high=high, frac=float(1 << self.leak_frac_bits), gamma=self.gamma,
                    surrogate=self.surrogate, sharpness=self.sharpness)
            trains[name] = h
            first = False
        raise AssertionError("unreachable: the last spec is the output layer")


def mode_optimizer(net, *, lr, leak_lr, steps):
    """``(optimizer, schedule)`` for a phase of ``net``'s current ``mode``: Adam over the
    parameters the mode trains, the leak factors at their own ``leak_lr``, and cosine decay
    over ``steps`` optimizer steps (stepped after every batch)."""
    params = net.parameters_for(net.mode)
    leaks = {id(p) for p in net.betas.parameters()}
    optimizer = torch.optim.Adam([{"params": [p for p in params if id(p) not in leaks]},
                                  {"params": [p for p in params if id(p) in leaks],
                                   "lr": leak_lr}], lr=lr)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


def _shift_for(ratio, limit):
    """The smallest ``k`` with ``ratio / 2**k <= limit``, at most the contract's largest
    current shift (:data:`CURRENT_SHIFTS`)."""
    return min(CURRENT_SHIFTS[1], smallest_shift(ratio, limit))


def _int_list(tensor, dtype):
    values = tensor.detach().to(torch.float64).cpu().numpy()
    if not np.array_equal(values, np.round(values)):
        raise ValueError("a quantized tensor holds non-integer values; the scaling is broken")
    return values.astype(dtype)


def network_parts(net, *, name, input_spec, dataset=None, metadata=None):
    """``(manifest, arrays)`` of the integer SNN that ``net`` (SNN mode) computes.

    ``input_spec`` is the manifest's ``input`` object; its scale must be ``net.input_scale``.
    The zero point is folded into the first layer's bias. A leak with ``f = 2**q`` is exported
    as ``none`` (the same arithmetic without the multiply).
    """
    span = input_spec["raw_max"] - input_spec["raw_min"]
    if not np.isclose(span / ((1 << input_spec["bits"]) - 1), net.input_scale, rtol=1e-12):
        raise ValueError("input_spec's scale differs from the network's input_scale")
    with torch.no_grad():
        quant = net.quant_layers()
    layers, arrays, first, scaling = [], {}, True, {}
    for spec in net.specs:
        obj = {"name": spec["name"], "type": spec["type"], "output": "spikes",
               "out_shape": list(spec["out_shape"])}
        if spec["type"] == "flatten":
            obj.update(start_dim=spec["start_dim"], end_dim=spec["end_dim"])
            layers.append(obj)
            continue
        if spec["type"] == "maxpool2d":
            obj.update(kernel=list(spec["kernel"]), stride=list(spec["stride"]))
            layers.append(obj)
            continue
        q = quant[spec["name"]]
        weight = _int_list(q["weight"], np.int64)
        bias = _int_list(q["bias"], np.int64)
        if first:
            bias = bias - net.input_zero * weight.reshape(weight.shape[0], -1).sum(axis=1)
        if spec["type"] == "linear":
            obj["out_features"] = spec["out_features"]
        else:
            obj.update(out_channels=spec["out_channels"], kernel=list(spec["kernel"]),
                       stride=list(spec["stride"]), padding=list(spec["padding"]))
        obj.update(weight_bits=net.weight_bits, bias_bits=net.bias_bits)
        arrays[f"{spec['name']}.weight"] = weight.astype(np.int8)
        arrays[f"{spec['name']}.bias"] = bias.astype(np.int32)
        scaling[spec["name"]] = {"unit": float(q["unit"])}
        shift = {"current_shift": q["shift"]} if q["shift"] else {}
        if spec["name"] == net.output_name:
            obj["output"] = "membrane"
            width = {} if net.output_membrane_bits == net.membrane_bits else \
                {"membrane_bits": net.output_membrane_bits}
            obj["neuron"] = {"leak": {"kind": "none"}, **shift, **width}
        else:
            factor = int(_int_list(q["factor"], np.int64))
            leak = {"kind": "none"} if factor == 1 << net.leak_frac_bits else \
                {"kind": "mul", "factor": factor, "frac_bits": net.leak_frac_bits}
            obj["neuron"] = {"threshold": int(_int_list(q["threshold"], np.int64)),
                             "reset": "subtract", "v_init": net.v_init, "leak": leak,
                             **shift}
            scaling[spec["name"]].update(
                theta=float(q["theta"]), beta=float(net.betas[spec["name"]].detach().clamp(0, 1)))
        layers.append(obj)
        first = False
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": name,
                "timesteps": net.timesteps, "membrane_bits": net.membrane_bits,
                "input": dict(input_spec), "layers": layers, "dataset": dict(dataset or {}),
                "metadata": {**(metadata or {}), "scaling": scaling}}
    return manifest, arrays

