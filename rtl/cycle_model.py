"""Analytic cycle model: the exact cycle count of one image on the RTL, in pure Python.

It adds up the sequencer's schedule (``rtl/sequencer.py``) with each block's documented cost:

* run: ``1`` (``DONE``) plus, per layer, ``2`` (``LOAD``, ``NEXT``) plus, per channel group,
  ``1`` (``GROUP``) plus the ``T + 1`` phases; a max-pool layer has one group of ``T``
  phases with ``F = maxpool.scan_pool_cycles - 1`` (the pass's ``done``);
* a phase costs ``max(1, F, D) + 2`` cycles (``PHASE``, ``WAIT`` until both sides are
  done, ``SWAP``), ``F`` and ``D`` counted from the ``PHASE`` cycle (``0`` when the side is
  idle in that phase);
* ``D = positions + AggregationCore.LATENCY + 1``: the sweep's ``done`` strobe
  (``positions + latency + 2`` cycles including the start cycle);
* ``F`` of a direct-encoded layer's phase 0: ``reference_mac.run_cycles - 1`` (its ``done``
  strobe);
* ``F`` of a spiking layer's phase ``k < T``: the scanner -> tap generator -> PE array chain
  on input timestep ``k + 1``, ``E + pe_array.LATENCY`` where ``E`` is the cycle the tap
  generator hands the end marker to the PE array (always ready). ``E`` follows from the
  scanner's cost (one cycle per event, one per empty word, starting one cycle after
  ``start``) and the tap generator's three item registers ``p_``, ``q_``, ``e_``: with
  ``x`` the cycle an item is accepted, ``P``/``Q`` the cycles it moves on to ``q_``/``e_``
  and ``E`` the cycle the emitter finishes it, for items ``e = 0, 1, ...``::

      x[e] = max(x[e-1] + 1 + empty words before e, P[e-1])
      P[e] = max(x[e] + 1, Q[e-1]);  Q[e] = max(P[e] + 1, E[e-1])
      E[e] = Q[e] + max(1, taps(e))   (1 for the end marker)

  (``x[-1] = 0`` is the scanner's start cycle). The positions of the spikes matter: an event
  at the border has fewer taps, so the golden model's spike traces are the input.
"""

import numpy as np

from .aggregation import AggregationCore
from .pe_array import LATENCY as PE_LATENCY
from .maxpool import scan_pool_cycles
from .reference_mac import run_cycles

__all__ = ["event_taps", "chain_cycles", "predict_cycles", "predict_from_golden"]


def _axis_taps(coord, kernel, stride, pad, out):
    count = 0
    for k in range(kernel):
        shifted = coord + pad - k
        if shifted >= 0 and shifted % stride == 0 and shifted // stride < out:
            count += 1
    return count


def event_taps(plan, y, x):
    """Taps of an input event at ``(y, x)`` of layer ``plan`` (1 for a linear layer)."""
    if plan.linear:
        return 1
    return (_axis_taps(y, plan.kernel[0], plan.stride[0], plan.padding[0], plan.height)
            * _axis_taps(x, plan.kernel[1], plan.stride[1], plan.padding[1], plan.width))


def chain_cycles(items):
    """``F`` of one fill phase from its scan items.

    ``items`` lists ``(empty_words_before, taps)`` per event in scan order, then
    ``(empty_words_before, None)`` for the end marker.
    """
    x = 0
    p = q = e = -1
    for empty, taps in items:
        x = max(x + 1 + empty, p)
        p = max(x + 1, q)
        q = max(p + 1, e)
        e = q + (1 if taps is None else max(1, taps))
    return e + PE_LATENCY


def _scan_items(plan, spikes, lanes):
    """Scan items of one timestep: ``spikes`` is the input bitmap's (C, H, W) 0/1 array."""
    channels, height, width = plan.in_shape
    groups = -(-channels // lanes)
    padded = np.zeros((groups * lanes, height * width), dtype=np.uint8)
    padded[:channels] = np.asarray(spikes).reshape(channels, height * width)
    items, empty = [], 0
    for position in range(height * width):
        y, x = divmod(position, width)
        taps = event_taps(plan, y, x)
        for group in range(groups):
            count = int(padded[group * lanes:(group + 1) * lanes, position].sum())
            if count == 0:
                empty += 1
                continue
            items.append((empty, taps))
            items.extend((0, taps) for _ in range(count - 1))
            empty = 0
    items.append((empty, None))
    return items


def _pool_words(plan, spikes, lanes):
    """The scanned words of one input timestep, each as the list of its events' (y, x)."""
    channels, height, width = plan.in_shape
    groups = -(-channels // lanes)
    padded = np.zeros((groups * lanes, height * width), dtype=np.uint8)
    padded[:channels] = np.asarray(spikes).reshape(channels, height * width)
    words = []
    for position in range(height * width):
        y, x = divmod(position, width)
        for group in range(groups):
            count = int(padded[group * lanes:(group + 1) * lanes, position].sum())
            words.append([(y, x)] * count)
    return words


def _phase(fill, drain):
    return max(1, fill, drain) + 2


def predict_cycles(program, input_spikes):
    """Cycles of one image.

    Parameters
    ----------
    program : rtl.program.Program
    input_spikes : dict
        Layer name -> ``(T, C, H, W)`` (or ``(T, C)``) 0/1 spikes of that layer for the
        image: needed for every ``plan.source``.
    """
    lanes = program.config.pes
    timesteps = program.network.timesteps
    total = 1
    for plan, desc in zip(program.layers, program.descriptors):
        total += 2
        drain = plan.positions + AggregationCore.LATENCY + 1
        if plan.direct:
            fill = run_cycles(desc["geometry"], desc["in_channels"]) - 1
            group = _phase(fill, 0) + timesteps * _phase(0, drain)
            total += plan.groups * (1 + group)
            continue
        spikes = np.asarray(input_spikes[plan.source])
        if plan.pool:
            params = {**desc["geometry"], "groups": plan.groups}
            words = plan.positions * plan.groups
            total += 1 + sum(_phase(scan_pool_cycles(words, _pool_words(plan, spikes[t], lanes),
                                                     params) - 1, 0)
                             for t in range(timesteps))
            continue
        fills = [chain_cycles(_scan_items(plan, spikes[t], lanes)) for t in range(timesteps)]
        group = _phase(fills[0], 0) + sum(_phase(fills[k], drain) for k in range(1, timesteps))
        group += _phase(0, drain)
        total += plan.groups * (1 + group)
    return total


def predict_from_golden(program, golden, index=0):
    """:func:`predict_cycles` for image ``index`` of a ``golden.run(..., trace=True)``."""
    needed = {plan.source for plan in program.layers if plan.source is not None}
    spikes = {name: golden.traces[name].spikes[:, index] for name in needed}
    return predict_cycles(program, spikes)
