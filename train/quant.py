"""Quantization-aware training primitives shared by the trainer and the exporter.

The integer scaling (one place for the trainer *and* the exporter)
------------------------------------------------------------------
For a synaptic layer ``l`` one integer step of its current stands for the real value
``unit_l``. Its input integers stand for ``s_in`` each: the pixel step (``InputSpec.scale``)
for the direct-encoded first layer, and ``lambda_{l-1}`` -- the value one spike of the
previous layer stands for -- for later layers. Then::

    unit_l  = max(max|W_l| * s_in / qmax_w,  bound_l / theta_max)
    step_l  = unit_l / s_in                       # real value of one integer weight step
    W_int   = clip(round(W_l / step_l), -qmax_w, qmax_w)
    b_int   = clip(round(b_l / unit_l), bias range)
    theta_l = clip(round(lambda_l / unit_l), 1, theta_max)

``round`` is round-half-up (``floor(x + 1/2)``). ``bound_l`` is the clip value ``lambda_l`` of a
spiking layer; for the non-spiking output layer it is ``T * m`` where ``m`` bounds ``|logit|``,
so that the output membrane (which sums ``T`` currents) also stays below ``theta_max``.
``theta_max = 2**(membrane_bits - 2)`` leaves a factor 2 of headroom against saturation.

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

__all__ = [
    "round_half_up",
    "ste_round",
    "LayerQuant",
    "layer_quant",
    "qrelu",
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


def layer_quant(weight, bias, s_in, bound, *, weight_bits, bias_bits, membrane_bits,
                lam=None):
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

    Returns
    -------
    LayerQuant
    """
    qmax = (1 << (weight_bits - 1)) - 1
    bias_low, bias_high = -(1 << (bias_bits - 1)), (1 << (bias_bits - 1)) - 1
    limit = theta_max(membrane_bits)
    w = weight.detach()
    s_in = torch.as_tensor(s_in, dtype=w.dtype).detach()
    bound = torch.as_tensor(bound, dtype=w.dtype).detach()
    unit = torch.maximum(w.abs().max() * s_in / qmax, bound / limit)
    # A layer of all-zero weights and zero bound would give unit 0; any positive unit works.
    unit = torch.clamp(unit, min=torch.finfo(w.dtype).tiny)
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
        threshold = torch.clamp(round_half_up(lam.detach() / unit), 1, limit)
        lam_q = threshold * unit + (lam - lam.detach())
    return LayerQuant(weight_int, bias_int, threshold, unit, step, weight_q, bias_q, lam_q)


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
