"""One spiking layer through ``T`` timesteps in the contract's integers, with a fused BPTT.

:class:`LIFLayer` runs the aggregation core of ``docs/neuron.md`` (multiplicative leak,
saturation, fire, reset by subtraction) on float32 tensors holding exact integers, and
implements backpropagation through time by hand: autograd over the same loop records about
forty small tensor operations per timestep and was several times slower on the CPU.

Forward, per timestep ``t`` (``f`` the leak factor, ``q`` its fraction bits)::

    u_t = floor(v_{t-1} * f / 2**q)          # (V * f) >> q
    w_t = clamp(u_t + I_t, low, high)        # saturate to the membrane width
    s_t = (w_t >= theta)                     # fire
    v_t = w_t - theta * s_t                  # reset by subtraction

Backward (straight-through for ``floor``; zero through a saturated clamp; the reset's spike is
treated as a constant, DIET-SNN's linear surrogate for the spike)::

    ds_t/dw_t     = gamma * max(0, 1 - |w_t / theta - 1|) / theta
    ds_t/dtheta   = -gamma * max(0, 1 - |w_t / theta - 1|) * w_t / theta**2
    dv_t/dtheta   = -s_t
    du_t/dv_{t-1} = f / 2**q,   du_t/df = v_{t-1} / 2**q
"""

import torch

__all__ = ["LIFLayer", "lif"]


class LIFLayer(torch.autograd.Function):
    """The fused layer; call it through :func:`lif`.

    ``current`` is ``(T, N, ...)``, or ``(N, ...)`` with ``constant=True`` for a direct-encoded
    layer whose current is the same at every step; ``theta`` and ``factor`` are 0-dim tensors
    of exact integers; ``v0`` is the initial membrane. Returns the spikes ``(T, N, ...)`` as
    0/1 floats.
    """

    @staticmethod
    def forward(ctx, current, theta, factor, timesteps, constant, v0, low, high, frac, gamma):
        shape = current.shape if constant else current.shape[1:]
        theta_v, factor_v = float(theta), float(factor)
        v = torch.full(shape, float(v0), dtype=current.dtype)
        membranes = torch.empty((timesteps, *shape), dtype=current.dtype)  # w_t
        for t in range(timesteps):
            w = torch.floor(v * (factor_v / frac)) if factor_v != frac else v
            w = w + (current if constant else current[t])
            w.clamp_(low, high)
            membranes[t] = w
            v = w - theta_v * (w >= theta_v).to(w.dtype)
        ctx.save_for_backward(membranes)
        ctx.config = (theta_v, factor_v, timesteps, constant, float(v0), low, high, frac, gamma)
        return (membranes >= theta_v).to(current.dtype)

    @staticmethod
    def backward(ctx, grad):
        (membranes,) = ctx.saved_tensors
        theta, factor, timesteps, constant, v0, low, high, frac, gamma = ctx.config
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
            grad_w = (grad_z / theta + grad_v) * ((w > low) & (w < high)).to(w.dtype)
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
        return grad_current, theta_out, factor_out, None, None, None, None, None, None, None


def lif(current, theta, factor, *, timesteps, constant, v0, low, high, frac, gamma):
    """Spikes ``(T, N, ...)`` of one layer (module docstring); differentiable in ``current``,
    ``theta`` and ``factor`` (0-dim tensors of exact integers)."""
    return LIFLayer.apply(current, theta, factor, timesteps, constant, v0, low, high, frac, gamma)
