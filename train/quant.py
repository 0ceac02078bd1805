"""Quantization-aware training primitives shared by the trainer and the exporter.

The integer scaling (one place for the trainer *and* the exporter)
------------------------------------------------------------------
For a synaptic layer ``l`` one integer step of its current stands for the real value
``unit_l``. Its input integers stand for ``s_in`` each: the pixel step (``InputSpec.scale``)
for the direct-encoded first layer, and ``lambda_{l-1}`` -- the value one spike of the
previous layer stands for -- for later layers. Then::

    unit_l  = max(w_scale(W_l) * s_in,  bound_l / theta_max)
    step_l  = unit_l / s_in                       # real value of one integer weight step
    W_int   = clip(round(W_l / step_l), -qmax_w, qmax_w)
    b_int   = clip(round(b_l / unit_l), bias range)
    theta_l = clip(round(lambda_l / unit_l), 1, theta_max)

``w_scale(W) = max|W| / qmax_w`` (:func:`weight_scale`), so that every weight fits unclipped;
for ternary weights (``weight_bits = 2``: integers -1, 0, 1) it is ``2 * 0.7 * mean|W|``
instead, so that the weights above TWN's threshold ``0.7 * mean|W|`` (Li & Liu 2016, Ternary
Weight Networks) become +-1 and the rest 0 (with ``max|W|`` as the step only the few weights
above half the largest would survive).
``round`` is round-half-up (``floor(x + 1/2)``). ``bound_l`` is the clip value ``lambda_l`` of a
spiking layer; for the non-spiking output layer it is ``T * m`` where ``m`` bounds ``|logit|``,
so that the output membrane (which sums ``T`` currents) also stays below ``theta_max``.
``theta_max = 2**(membrane_bits - 2)`` leaves a factor 2 of headroom against saturation.
The synaptic layers whose currents one residual ``add`` sums share a single ``unit`` (the
maximum of their own, :func:`current_unit`); the add's threshold and the integer scale of an
identity shortcut are then expressed in that unit (:mod:`spikeforge.train.convert`).

:func:`layer_quant` computes all of this once; the training forward pass uses its
``weight_q``/``bias_q``/``lam`` (fake-quantized values ``W_int * step``, ``b_int * unit``,
``theta * unit``) and the exporter stores its ``weight_int``/``bias_int``/``threshold``. The
exported integers are therefore *exactly* the trained ones: ``round(weight_q / step) ==
weight_int`` (tests/test_train_digits.py checks it).

Gradients use the straight-through estimator: forward values are exact quantized values,
backward passes the gradient to the float weight (and to ``lambda``) as if rounding were the
identity. Scales (``unit``, ``step``) are computed from detached tensors.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "round_half_up",
    "ste_round",
    "LayerQuant",
    "TERNARY_THRESHOLD",
    "weight_scale",
    "current_unit",
    "layer_quant",
    "add_threshold",
    "qrelu",
    "qavgpool",
    "theta_max",
]


def round_half_up(x):
    """``floor(x + 1/2)``: the rounding used everywhere in the integer scaling."""
    return torch.floor(x + 0.5)


def ste_round(x):
    """Round half up in the forward pass, identity gradient in the backward pass.

    Written as ``round(x) + (x - x.detach())`` so the forward value is exactly the rounded
    value (the added term is an exact zero), not ``x + (round(x) - x)`` which may differ in
    the last bit.
    """
    return round_half_up(x.detach()) + (x - x.detach())


def theta_max(membrane_bits):
    """Largest threshold the scaling allows: ``2**(membrane_bits - 2)`` (headroom factor 2)."""
    return 1 << (membrane_bits - 2)


class LayerQuant(NamedTuple):
    """Integer scaling of one synaptic layer (see the module docstring for the formulas).

    Integer-valued fields are float tensors holding exact integers (same dtype as the
    weight); the exporter casts them. ``threshold``/``lam`` are ``None`` for the output layer.
    """

    weight_int: torch.Tensor
    bias_int: torch.Tensor | None
    threshold: torch.Tensor | None
    unit: torch.Tensor          # real value of one integer current step
    step: torch.Tensor          # real value of one integer weight step (unit / s_in)
    weight_q: torch.Tensor      # weight_int * step, with a straight-through gradient
    bias_q: torch.Tensor | None  # bias_int * unit, with a straight-through gradient
    lam: torch.Tensor | None    # threshold * unit: the quantized clip value (STE to lambda)


#: TWN's ternarisation threshold as a fraction of ``mean|W|`` (:func:`weight_scale`).
TERNARY_THRESHOLD = 0.7


def weight_scale(weight, s_in, weight_bits):
    """``w_scale(W) * s_in`` (module docstring): the current one integer weight step carries at
    least, ``max|W| * s_in / qmax``, or ``2 * TERNARY_THRESHOLD * mean|W| * s_in`` for 2-bit
    (ternary) weights. Detached."""
    w = weight.detach().abs()
    if weight_bits == 2:
        return 2 * TERNARY_THRESHOLD * w.mean() * s_in
    return w.max() * s_in / ((1 << (weight_bits - 1)) - 1)


def current_unit(weight, s_in, bound, *, weight_bits, membrane_bits):
    """``unit = max(w_scale(W) * s_in, bound / theta_max)``, detached, never zero.

    The real value of one integer current step of a layer (module docstring). Layers whose
    currents an ``add`` sums share one unit: the maximum of their individual units, so every
    member's weights still fit ``weight_bits`` and the add's threshold fits the membrane.
    """
    w = weight.detach()
    s_in = torch.as_tensor(s_in, dtype=w.dtype).detach()
    bound = torch.as_tensor(bound, dtype=w.dtype).detach()
    unit = torch.maximum(weight_scale(w, s_in, weight_bits), bound / theta_max(membrane_bits))
    # A layer of all-zero weights and zero bound would give unit 0; any positive unit works.
    return torch.clamp(unit, min=torch.finfo(w.dtype).tiny)


def layer_quant(weight, bias, s_in, bound, *, weight_bits, bias_bits, membrane_bits,
                lam=None, unit=None):
    """Quantize one synaptic layer for training and export alike.

    Parameters
    ----------
    weight, bias : torch.Tensor
        Float parameters of the layer (``bias`` may be ``None``).
    s_in : float or torch.Tensor
        Real value of one input integer (pixel step, or the previous layer's ``lam``).
    bound : float or torch.Tensor
        Largest real per-step current the layer must represent below ``theta_max``:
        ``lambda`` for a spiking layer, ``T * max|logit|`` for the output layer.
    weight_bits, bias_bits, membrane_bits : int
    lam : torch.Tensor, optional
        The learnable clip value of a spiking layer (then ``threshold`` and ``lam`` are set).
    unit : torch.Tensor, optional
        Use this current unit instead of :func:`current_unit` (a unit shared by the layers an
        ``add`` sums; it must be at least the layer's own unit so the weights fit).

    Returns
    -------
    LayerQuant
    """
    qmax = (1 << (weight_bits - 1)) - 1
    bias_low, bias_high = -(1 << (bias_bits - 1)), (1 << (bias_bits - 1)) - 1
    w = weight.detach()
    s_in = torch.as_tensor(s_in, dtype=w.dtype).detach()
    if unit is None:
        unit = current_unit(weight, s_in, bound, weight_bits=weight_bits,
                            membrane_bits=membrane_bits)
    unit = unit.detach()
    step = unit / s_in
    weight_int = torch.clamp(round_half_up(w / step), -qmax, qmax)
    weight_q = weight_int * step + (weight - w)
    bias_int = bias_q = None
    if bias is not None:
        b = bias.detach()
        bias_int = torch.clamp(round_half_up(b / unit), bias_low, bias_high)
        bias_q = bias_int * unit + (bias - b)
    threshold = lam_q = None
    if lam is not None:
        threshold, lam_q = add_threshold(lam, unit, membrane_bits)
    return LayerQuant(weight_int, bias_int, threshold, unit, step, weight_q, bias_q, lam_q)


def add_threshold(lam, unit, membrane_bits):
    """``theta = clip(round(lam / unit), 1, theta_max)`` and ``lam_q = theta * unit`` (STE).

    The threshold of a neuron whose current is counted in steps of ``unit`` (a spiking
    synaptic layer, or an ``add`` over currents sharing ``unit``).
    """
    threshold = torch.clamp(round_half_up(lam.detach() / unit), 1, theta_max(membrane_bits))
    return threshold, threshold * unit + (lam - lam.detach())


def qrelu(x, lam, levels):
    """Quantized ReLU with clip value ``lam`` and ``levels`` steps (QCFS style).

    Forward: ``lam / L * clip(floor(x * L / lam + 1/2), 0, L)``. This is what an IF neuron
    with threshold ``lam``, reset by subtraction and initial membrane ``lam / 2`` emits (as a
    spike count times ``lam / T``) over ``T = L`` steps of a constant input ``x``. Backward:
    straight-through for the rounding; ``x`` gets gradient 1 inside ``(0, lam)``, ``lam``
    gets 1 above the clip (PACT) plus the rounding residual inside.
    """
    scaled = torch.clamp(x / lam, 0.0, 1.0) * levels
    return ste_round(scaled) * (lam / levels)


def qavgpool(x, lam, levels, kernel, stride):
    """Average pooling of quantized-ReLU outputs, re-quantized as the SNN's avg-pool neuron does.

    ``x`` holds levels ``k * lam / L`` (``k`` in ``0..L``). The contract's avgpool2d neuron
    (current = spikes in the window, threshold ``K = kh * kw``, reset by subtraction, initial
    membrane ``K >> 1``, no leak) fires exactly ``floor((S + (K >> 1)) / K)`` times over the
    ``T`` steps when its window receives ``S`` spikes in total: its membrane stays in
    ``0 .. K - 1`` after every step because at most ``K`` spikes arrive per step, so no charge
    is lost or left over beyond the final remainder. This is ``round_half_up(S / K)`` (for odd
    ``K`` the two roundings agree because ``S`` is an integer). The forward pass computes that
    count from the integer levels, so it matches the SNN's spike *count* exactly (given the
    input counts); the backward pass is the plain average pool's.
    """
    step = lam.detach() / levels
    k = round_half_up(x.detach() / step)            # exact integer levels of the input
    count = kernel[0] * kernel[1]
    total = F.avg_pool2d(k, kernel, stride, divisor_override=1)
    out = torch.floor((total + (count >> 1)) / count) * step
    smooth = F.avg_pool2d(x, kernel, stride)
    return out + (smooth - smooth.detach())
