"""Synaptic currents: what the PE array (spikes) and the first-layer MAC (pixels) compute.

All functions take a batch axis first and return exact ``int64`` currents.

Speed without giving up exactness: the weighted sums are done as BLAS matrix products in
floating point, which is exact as long as every partial sum is an integer smaller than the
mantissa limit (2**24 for float32, 2**53 for float64). :func:`exact_dtype` picks the
narrowest float type whose limit the layer's worst case (``sum |W| * max input + |bias|``)
cannot reach, and falls back to ``int64`` arithmetic beyond that. The tests compare these
functions with naive integer loops.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "exact_dtype",
    "weighted_current",
    "current_bound",
    "maxpool2d",
    "avgpool2d_current",
    "fanout",
]

#: Upper bound on the elements of one im2col block, to keep memory flat for big batches.
_BLOCK_ELEMENTS = 1 << 23


def current_bound(weight, bias, max_input):
    """Largest ``|I|`` of ``weight @ x + bias`` for ``0 <= x <= max_input``.

    ``max_o (sum |W[o]|) * max_input + max |b|``; every partial sum is bounded by it too.
    """
    per_output = np.abs(weight.reshape(weight.shape[0], -1).astype(np.int64)).sum(axis=1)
    bound = int(per_output.max(initial=0)) * int(max_input)
    if bias is not None:
        bound += int(np.abs(bias.astype(np.int64)).max(initial=0))
    return bound


def exact_dtype(weight, bias, max_input):
    """Narrowest dtype in which ``weight @ x + bias`` is exact for ``0 <= x <= max_input``."""
    bound = current_bound(weight, bias, max_input)
    if bound < (1 << 24):
        return np.float32
    if bound < (1 << 53):
        return np.float64
    return np.int64


def _windows(x, kernel, stride, padding):
    """View of ``x`` (N, C, *S) as (N, C, *O, *K) kernel windows, zero-padded and strided."""
    dims = len(kernel)
    if any(padding):
        x = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    view = sliding_window_view(x, kernel, axis=tuple(range(2, 2 + dims)))
    return view[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)]


def weighted_current(x, layer, max_input, *, out_dtype=np.int64):
    """Current of a conv2d/conv3d/linear layer for a batch of inputs.

    ``x`` is (N, *layer.in_shape) of spikes (0/1) or pixels (``0..max_input``); the result is
    (N, *layer.out_shape) of ``out_dtype``: ``conv(x, W) + b`` (or ``x @ W.T + b``), zero
    padding. ``out_dtype`` may be narrower than ``int64`` only when the caller has checked
    that the layer's worst case (:func:`current_bound`) fits it.
    """
    dtype = exact_dtype(layer.weight, layer.bias, max_input)
    n = x.shape[0]
    out_channels = layer.weight.shape[0]
    matrix = layer.weight.reshape(out_channels, -1).astype(dtype)  # (Co, C*K)
    if layer.type == "linear":
        result = (x.astype(dtype) @ matrix.T).astype(out_dtype)
    else:
        positions = int(np.prod(layer.out_shape[1:]))
        rows = max(1, _BLOCK_ELEMENTS // max(1, positions * matrix.shape[1]))
        result = np.empty((n, out_channels, positions), dtype=out_dtype)
        dims = len(layer.kernel)
        # (n, C, *O, *K) -> (n, C, *K, *O): columns channel-and-tap first, so that
        # W (Co, C*K) @ columns (n, C*K, P) lands directly in (n, Co, P) order.
        order = (0, 1, *range(2 + dims, 2 + 2 * dims), *range(2, 2 + dims))
        for start in range(0, n, rows):
            view = _windows(x[start:start + rows], layer.kernel, layer.stride, layer.padding)
            windows = view.transpose(order)
            columns = np.empty(windows.shape, dtype=dtype)
            np.copyto(columns, windows, casting="unsafe")  # one pass: gather and convert
            columns = columns.reshape(windows.shape[0], matrix.shape[1], positions)
            np.copyto(result[start:start + rows], matrix @ columns, casting="unsafe")
        result = result.reshape(n, *layer.out_shape)
    if layer.bias is not None:
        result += layer.bias.astype(out_dtype).reshape((-1,) + (1,) * (result.ndim - 2))
    return result


def _pool_taps(spikes, layer):
    """Yield, per kernel tap (ky, kx), the (N, C, Ho, Wo) slice of inputs that tap reads.

    A loop over the few taps on strided slices touches each input once per tap; reducing a
    (..., Kh, Kw) window view instead is several times slower in NumPy.
    """
    out_h, out_w = layer.out_shape[1:]
    stride_y, stride_x = layer.stride
    for ky in range(layer.kernel[0]):
        for kx in range(layer.kernel[1]):
            yield spikes[:, :, ky:ky + stride_y * (out_h - 1) + 1:stride_y,
                         kx:kx + stride_x * (out_w - 1) + 1:stride_x]


def maxpool2d(spikes, layer):
    """Max-pool on spikes: an output spikes when any input in its window spiked (OR)."""
    result = np.zeros((spikes.shape[0], *layer.out_shape), dtype=np.uint8)
    for tap in _pool_taps(spikes, layer):
        np.bitwise_or(result, tap, out=result)
    return result


def avgpool2d_current(spikes, layer):
    """Avg-pool current: the number of spikes in each window (a fixed weight-1 depthwise conv)."""
    result = np.zeros((spikes.shape[0], *layer.out_shape), dtype=np.int64)
    for tap in _pool_taps(spikes, layer):
        result += tap
    return result


def fanout(layer):
    """Accumulates one input event causes, per input element: (*layer.in_shape) ``int64``.

    For conv/linear layers it counts the non-zero weights that connect the element to an
    output (pruned weights cost nothing), for avg-pool the windows that contain it. The
    synaptic operations of a timestep are then ``sum(spikes * fanout)``, and the first
    layer's multiply-accumulates per image are ``sum(fanout)``.
    """
    if layer.type == "linear":
        return (layer.weight != 0).sum(axis=0).astype(np.int64)
    if layer.type == "avgpool2d":
        taps = np.ones((layer.in_shape[0], *layer.kernel), dtype=np.int64)
        padding = (0, 0)
    else:
        taps = (layer.weight != 0).sum(axis=0).astype(np.int64)  # (C_in, *K)
        padding = layer.padding
    channels, spatial = layer.in_shape[0], layer.in_shape[1:]
    index = np.arange(int(np.prod(spatial))).reshape(1, 1, *spatial)
    if any(padding):
        index = np.pad(index, [(0, 0), (0, 0)] + [(p, p) for p in padding], constant_values=-1)
    view = sliding_window_view(index, layer.kernel, axis=tuple(range(2, 2 + len(spatial))))
    view = view[(0, 0) + tuple(slice(None, None, s) for s in layer.stride)]  # (*O, *K)
    flat_index = view.reshape(-1, int(np.prod(layer.kernel)))  # (positions, taps)
    result = np.zeros((channels, int(np.prod(spatial))), dtype=np.int64)
    tap_counts = taps.reshape(channels, -1)  # (C_in, taps)
    valid = flat_index >= 0
    for tap in range(flat_index.shape[1]):
        # Within one tap, distinct output positions read distinct inputs: no repeated targets.
        targets = flat_index[valid[:, tap], tap]
        result[:, targets] += tap_counts[:, tap:tap + 1]
    return result.reshape(channels, *spatial)
