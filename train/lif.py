"""One spiking layer through ``T`` timesteps in the contract's integers, with a fused BPTT.

:class:`LIFLayer` runs the aggregation core of ``docs/neuron.md`` (multiplicative leak,
saturation, fire, reset by subtraction) on float32 tensors holding exact integers, and
implements backpropagation through time by hand: autograd over the same loop records about
forty small tensor operations per timestep and was several times slower on the CPU.

Forward, per timestep ``t`` (``f`` the leak factor, ``q`` its fraction bits)::

    u_t = floor(v_{t-1} * f / 2**q) + I_t    # (V * f) >> q, plus the current
    w_t = clamp(u_t, low, high)              # saturate to the membrane width
    s_t = (w_t >= theta)                     # fire
    v_t = w_t - theta * s_t                  # reset by subtraction

Backward (straight-through for ``floor``; the reset's spike is treated as a constant,
DIET-SNN's linear surrogate for the spike)::

    ds_t/dw_t     = gamma * max(0, 1 - |w_t / theta - 1|) / theta
    ds_t/dtheta   = -gamma * max(0, 1 - |w_t / theta - 1|) * w_t / theta**2
    dv_t/dtheta   = -s_t
    du_t/dv_{t-1} = f / 2**q,   du_t/df = v_{t-1} / 2**q

and for the saturating membrane ``dw_t/du_t`` one of the :data:`SURROGATES`:

``"linear"``
    1 strictly inside ``low .. high``, 0 at or beyond either end (a saturated neuron passes
    no gradient).
``"stacked"``
    SpQuant-SNN's stacked surrogate for an integer membrane (Hasssan et al. 2024; their
    ``QMem`` backward): the ``B``-bit membrane is a staircase of ``2**B`` levels, and its
    derivative is replaced by the sum of one sigmoid derivative per step between two levels,

        dw_t/du_t = sum_{k = low}^{high - 1} a * sig'(a * (u_t - k - 1/2)),

    ``sig'(x) = sig(x) (1 - sig(x))``, with sharpness ``a`` (:data:`SHARPNESS`, SpQuant's
    ``T = 2`` on a unit interval). With that sharpness the sum is 0.98 to 0.998 from two
    levels inside either end on, 0.89 one level inside, about 1/2 at an end, 0.11 one level
    beyond it and 0.015 two beyond: a neuron driven just past the narrow range still
    learns. At 16 bits it differs from ``"linear"`` only next to the ends.
"""

import math

import torch

__all__ = ["SURROGATES", "SHARPNESS", "LIFLayer", "lif", "stacked_slope"]

#: The saturation surrogates ``dw/du`` of the membrane (module docstring).
SURROGATES = ("linear", "stacked")
#: Default sharpness ``a`` of the stacked surrogate's sigmoids (per membrane level).
SHARPNESS = 2.0


def _staircase(sharpness, dtype):
    """``(table, reach)``: ``table[m + reach]`` is ``sum_{i >= 0} a sig'(a (m - 1/2 - i))`` for
    the integer ``m`` in ``-reach .. reach``; farther terms are below float64's resolution."""
    reach = math.ceil(40.0 / sharpness) + 1
    m = torch.arange(-reach, reach + 1, dtype=torch.float64)[:, None]
    i = torch.arange(0, 2 * reach + 1, dtype=torch.float64)[None, :]
    sig = torch.sigmoid(sharpness * (m - 0.5 - i))
    return (sharpness * sig * (1.0 - sig)).sum(dim=1).to(dtype), reach


def stacked_slope(u, low, high, sharpness=SHARPNESS):
    """The stacked surrogate ``dw/du`` (module docstring) at the integer pre-saturation
    membranes ``u``: ``S(u - low) - S(u - high)``, ``S(m)`` the sum over the steps at
    ``m - 1/2, m - 3/2, ...`` above the lower end."""
    table, reach = _staircase(sharpness, u.dtype)

    def upper(distance):
        return table[(distance.clamp(-reach, reach) + reach).to(torch.long)]

    return upper(u - low) - upper(u - high)


class LIFLayer(torch.autograd.Function):
    """The fused layer; call it through :func:`lif`.

    ``current`` is ``(T, N, ...)``, or ``(N, ...)`` with ``constant=True`` for a direct-encoded
    layer whose current is the same at every step; ``theta`` and ``factor`` are 0-dim tensors
    of exact integers; ``v0`` is the initial membrane. Returns the spikes ``(T, N, ...)`` as
    0/1 floats.
    """

    @staticmethod
    def forward(ctx, current, theta, factor, timesteps, constant, v0, low, high, frac, gamma,
                surrogate="linear", sharpness=SHARPNESS):
        shape = current.shape if constant else current.shape[1:]
        theta_v, factor_v = float(theta), float(factor)
        stacked = surrogate == "stacked"
        v = torch.full(shape, float(v0), dtype=current.dtype)
        # w_t, or u_t (before saturation) for the stacked surrogate, which needs it.
        membranes = torch.empty((timesteps, *shape), dtype=current.dtype)
        for t in range(timesteps):
            w = torch.floor(v * (factor_v / frac)) if factor_v != frac else v
            w = w + (current if constant else current[t])
            if stacked:
                membranes[t] = w
            w.clamp_(low, high)
            if not stacked:
                membranes[t] = w
            v = w - theta_v * (w >= theta_v).to(w.dtype)
        ctx.save_for_backward(membranes)
        ctx.config = (theta_v, factor_v, timesteps, constant, float(v0), low, high, frac, gamma,
                      stacked, float(sharpness))
        if stacked:
            membranes = membranes.clamp(low, high)
        return (membranes >= theta_v).to(current.dtype)

    @staticmethod
    def backward(ctx, grad):
        (membranes,) = ctx.saved_tensors
        theta, factor, timesteps, constant, v0, low, high, frac, gamma, stacked, sharpness = \
            ctx.config
        if stacked:
            slopes = stacked_slope(membranes, low, high, sharpness)
            membranes = membranes.clamp(low, high)
        grad_current = torch.zeros_like(membranes[0]) if constant \
            else torch.empty_like(membranes)
        grad_v = torch.zeros_like(membranes[0])
        grad_theta = torch.zeros_like(membranes[0])
        grad_factor = torch.zeros_like(membranes[0])
        for t in reversed(range(timesteps)):
            w = membranes[t]
            fired = (w >= theta).to(w.dtype)
            surrogate = gamma * torch.clamp(1.0 - torch.abs(w / theta - 1.0), min=0.0)
            grad_z = grad[t] * surrogate
            grad_theta -= grad_z * w / (theta * theta) + grad_v * fired
            slope = slopes[t] if stacked else ((w > low) & (w < high)).to(w.dtype)
            grad_w = (grad_z / theta + grad_v) * slope
            if constant:
                grad_current += grad_w
            else:
                grad_current[t] = grad_w
            if t > 0:
                previous = membranes[t - 1]
                previous = previous - theta * (previous >= theta).to(w.dtype)
            else:
                previous = torch.full_like(w, v0)
            grad_factor += grad_w * previous
            grad_v = grad_w * (factor / frac)
        theta_out = grad_theta.sum().reshape(()) if ctx.needs_input_grad[1] else None
        factor_out = (grad_factor.sum() / frac).reshape(()) if ctx.needs_input_grad[2] else None
        return (grad_current, theta_out, factor_out, None, None, None, None, None, None, None,
                None, None)


def lif(current, theta, factor, *, timesteps, constant, v0, low, high, frac, gamma,
        surrogate="linear", sharpness=SHARPNESS):
    """Spikes ``(T, N, ...)`` of one layer (module docstring); differentiable in ``current``,
    ``theta`` and ``factor`` (0-dim tensors of exact integers). ``surrogate`` is one of
    :data:`SURROGATES` (the saturation's ``dw/du``), ``sharpness`` the stacked one's ``a``."""
    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate is {surrogate!r}; expected one of {', '.join(SURROGATES)}")
    return LIFLayer.apply(current, theta, factor, timesteps, constant, v0, low, high, frac, gamma,
                          surrogate, sharpness)
