"""Analytic cycle model: the exact cycle count of one image on the RTL, in pure Python.

It adds up the sequencer's schedule (``rtl/sequencer.py``) with each block's documented cost:

* run: ``1`` (``DONE``) plus, per layer, ``2`` (``LOAD``, ``NEXT``) plus, per channel group,
  ``1`` (``GROUP``) plus the ``T + 1`` phases; a max-pool layer has one group of ``T``
  phases;
* a phase costs ``max(1, F, D) + 2`` cycles (``PHASE``, ``WAIT`` until both sides are
  done, ``SWAP``), ``F`` and ``D`` counted from the ``PHASE`` cycle (``0`` when the side is
  idle in that phase);
* ``D = positions + AggregationCore.LATENCY + 1``: the sweep's ``done`` strobe
  (``positions + latency + 2`` cycles including the start cycle);
* ``F`` is the sum over the phase's passes (every segment, every plane, ``rtl/layout.py``)
  of ``c + 1`` for a pass whose block reports done ``c`` cycles after its start, and ``1``
  for a skipped pass (a kernel plane outside the input);
* ``c`` of a pass on the pixels: ``reference_mac.run_cycles - 1`` or, with the PIM block,
  ``pim_first_layer.pim_run_cycles - 1``; of a max-pool pass ``maxpool.scan_pool_cycles -
  1``;
* ``c`` of a scan pass: the scanner -> tap generator -> PE array chain on one plane of the
  input timestep, ``E + pe_array.LATENCY`` where ``E`` is the cycle the tap generator hands
  the end marker to the PE array (always ready). ``E`` follows from the scanner's cost (one
  cycle per event, one per empty word, starting one cycle after ``start``) and the tap
  generator's three item registers ``p_``, ``q_``, ``e_``: with ``x`` the cycle an item is
  accepted, ``P``/``Q`` the cycles it moves on to ``q_``/``e_`` and ``E`` the cycle the
  emitter finishes it, for items ``e = 0, 1, ...``::

      x[e] = max(x[e-1] + 1 + empty words before e, P[e-1])
      P[e] = max(x[e] + 1, Q[e-1]);  Q[e] = max(P[e] + 1, E[e-1])
      E[e] = Q[e] + max(1, taps(e))   (1 for the end marker)

  (``x[-1] = 0`` is the scanner's start cycle). The positions of the spikes matter: an event
  at the border has fewer taps, so the golden model's spike traces are the input.
"""

import numpy as np

from .aggregation import AggregationCore
from .pe_array import LATENCY as PE_LATENCY
from .maxpool import scan_pool_timing
from .pim_first_layer import pim_run_cycles
from .reference_mac import run_cycles

__all__ = ["PREDICTED_COUNTERS", "event_taps", "chain_cycles", "segment_rows",
           "program_mac_cycles",
           "predict_cycles", "predict_counters", "predict_from_golden",
           "counters_from_golden"]


def _axis_taps(coord, kernel, stride, pad, out):
    count = 0
    for k in range(kernel):
        shifted = coord + pad - k
        if shifted >= 0 and shifted % stride == 0 and shifted // stride < out:
            count += 1
    return count


def event_taps(segment, y, x):
    """Taps of an input event at ``(y, x)`` of a plane of ``segment`` (1 for linear)."""
    if segment.linear:
        return 1
    return (_axis_taps(y, segment.kernel[1], segment.stride[1], segment.padding[1],
                       segment.out[1])
            * _axis_taps(x, segment.kernel[2], segment.stride[2], segment.padding[2],
                         segment.out[2]))


def chain_cycles(items):
    """``F`` of one fill pass from its scan items.

    ``items`` lists ``(empty_words_before, taps)`` per event in scan order, then
    ``(empty_words_before, None)`` for the end marker.
    """
    return _chain(items)[0]


def _chain(items):
    """``(F, PE busy cycles, scanner busy cycles)`` of one fill pass (:func:`chain_cycles`).

    The scanner is busy from the cycle after its start to the marker's transfer (``x`` of
    the marker). The PE array is busy in every cycle a tap or the marker is offered to it
    (item ``e`` from cycle ``Q[e]`` on, one cycle per tap) and the two cycles after, while
    the offered row is in its ``a_``/``s_`` stages; an event without taps offers nothing.
    """
    x = 0
    p = q = e = -1
    pe_busy, busy_until = 0, None  # busy cycles counted so far; last busy cycle
    for empty, taps in items:
        x = max(x + 1 + empty, p)
        p = max(x + 1, q)
        q = max(p + 1, e)
        offered = 1 if taps is None else taps
        e = q + max(1, offered)
        if offered:
            first, last = q, q + offered - 1 + 2
            if busy_until is not None and first <= busy_until:
                first = busy_until + 1
            pe_busy += max(0, last - first + 1)
            busy_until = last if busy_until is None else max(busy_until, last)
    return e + PE_LATENCY, pe_busy, x


def _words(plane, lanes):
    """Events per scanned word of one plane (``(C, H, W)`` 0/1), in scan order:
    ``(y, x, count)`` per (position, group)."""
    channels, height, width = plane.shape
    groups = -(-channels // lanes)
    padded = np.zeros((groups * lanes, height * width), dtype=np.int64)
    padded[:channels] = np.asarray(plane).reshape(channels, height * width)
    counts = padded.reshape(groups, lanes, height * width).sum(axis=1)  # (groups, positions)
    for position in range(height * width):
        y, x = divmod(position, width)
        for group in range(groups):
            yield y, x, int(counts[group, position])


def _scan_items(segment, plane, lanes):
    """Scan items of one plane for :func:`chain_cycles`."""
    items, empty = [], 0
    for y, x, count in _words(plane, lanes):
        if count == 0:
            empty += 1
            continue
        taps = event_taps(segment, y, x)
        items.append((empty, taps))
        items.extend((0, taps) for _ in range(count - 1))
        empty = 0
    items.append((empty, None))
    return items


def _phase(fill, drain):
    return max(1, fill, drain) + 2


def _fill(program, plan, row_of, spikes, step):
    """``F`` of one phase: the passes of every segment, on input timestep ``step``."""
    return _fill_counts(program, plan, row_of, spikes, step)["fill"]


def _fill_counts(program, plan, row_of, spikes, step):
    """``F`` of one phase (``fill``) and the busy cycles of the PE array, the event scanner
    and the first-layer block (``pe``, ``scanner``, ``mac``) in it."""
    lanes = program.config.pes
    counts = {"fill": 0, "pe": 0, "scanner": 0, "mac": 0}
    for segment in plan.segments:
        row = row_of(segment)
        if segment.kind == "mac":
            cost = program_mac_cycles(program, row) - 1
            counts["fill"] += len(segment.passes) * (cost + 1)
            # Busy from the cycle after start through the done cycle.
            counts["mac"] += len(segment.passes) * cost
            continue
        planes = np.asarray(spikes[segment.source][step]).reshape(segment.map)
        for _, _, d in segment.passes:
            if not 0 <= d < segment.map[1]:
                counts["fill"] += 1
                continue
            plane = planes[:, d]
            if segment.kind == "pool":
                params = {**row["geometry"], "groups": plan.groups}
                words = [[(y, x)] * count for y, x, count in _words(plane, lanes)]
                cycles, scanned = scan_pool_timing(plan.positions * plan.groups, words, params)
                cost = cycles - 1
            else:
                cost, pe, scanned = _chain(_scan_items(segment, plane, lanes))
                counts["pe"] += pe
            counts["scanner"] += scanned
            counts["fill"] += cost + 1
    return counts


def segment_rows(program):
    """``row_of(segment)``: the descriptor table's segment row of each of ``program``'s
    segments (what the sequencer loads for it)."""
    rows = {}
    for plan, desc in zip(program.layers, program.descriptors):
        base = desc["layer"]["seg_base"]
        for number, segment in enumerate(plan.segments):
            rows[id(segment)] = program.descriptors[base + number]["segment"]
    return lambda segment: rows[id(segment)]


def program_mac_cycles(program, row):
    """Cycles of one run of the first-layer block on a segment row (``start`` to ``done``)."""
    config = program.config
    geometry, channels = row["geometry"], row["in_channels"]
    if config.first_layer == "pim":
        passes = config.pes // (config.pim_columns or config.pes)
        return pim_run_cycles(geometry, channels, rows=config.pim_rows,
                              input_bits=program.pixel_bits, column_passes=passes)
    return run_cycles(geometry, channels)


def predict_cycles(program, input_spikes):
    """Cycles of one image (``predict_counters(...)["cycles"]``)."""
    return predict_counters(program, input_spikes)["cycles"]


#: The hardware counters :func:`predict_counters` predicts (``rtl.top.Top``'s names).
PREDICTED_COUNTERS = ("cycles", "pe_busy_cycles", "aggregation_busy_cycles",
                      "scanner_busy_cycles", "mac_busy_cycles")


def predict_counters(program, input_spikes):
    """Every counter of :data:`PREDICTED_COUNTERS` for one image, as ``Top`` counts them.

    The sweep is busy ``D`` cycles per drain (from the cycle after its start through its
    ``done`` cycle); the other blocks as :func:`_fill_counts` says.

    Parameters
    ----------
    program : rtl.program.Program
    input_spikes : dict
        Layer name -> ``(T, *out_shape)`` 0/1 spikes of that layer for the image: needed
        for every layer a segment scans (``plan.sources``).
    """
    timesteps = program.network.timesteps
    row_of = segment_rows(program)
    total = 1
    busy = {"pe": 0, "scanner": 0, "mac": 0, "aggregation": 0}

    def fill(plan, step, repeat=1):
        counts = _fill_counts(program, plan, row_of, input_spikes, step)
        for name in ("pe", "scanner", "mac"):
            busy[name] += repeat * counts[name]
        return counts["fill"]

    for plan in program.layers:
        total += 2
        if plan.pool:
            total += 1 + sum(_phase(fill(plan, t), 0) for t in range(timesteps))
            continue
        drain = plan.positions + AggregationCore.LATENCY + 1
        # Every group of a layer scans the same input: its fills are the same.
        if plan.direct:
            group = _phase(fill(plan, 0, plan.groups), 0)
            group += timesteps * _phase(0, drain)
        else:
            fills = [fill(plan, t, plan.groups) for t in range(timesteps)]
            group = _phase(fills[0], 0) + sum(_phase(fills[k], drain)
                                              for k in range(1, timesteps))
            group += _phase(0, drain)
        busy["aggregation"] += plan.groups * timesteps * drain
        total += plan.groups * (1 + group)
    return {"cycles": total, "pe_busy_cycles": busy["pe"],
            "aggregation_busy_cycles": busy["aggregation"],
            "scanner_busy_cycles": busy["scanner"], "mac_busy_cycles": busy["mac"]}


def predict_from_golden(program, golden, index=0):
    """:func:`predict_cycles` for image ``index`` of a ``golden.run(..., trace=True)``."""
    return counters_from_golden(program, golden, index)["cycles"]


def counters_from_golden(program, golden, index=0):
    """:func:`predict_counters` for image ``index`` of a ``golden.run(..., trace=True)``."""
    needed = {source for plan in program.layers for source in plan.sources}
    spikes = {name: golden.traces[name].spikes[:, index] for name in needed}
    return predict_counters(program, spikes)
