"""Where an image's cycles go: the cycle model's total split per layer and per cause.

:func:`cycle_causes` walks the sequencer's schedule as :func:`spikeforge.rtl.cycle_model.
predict_cycles` does and charges every cycle of it to one layer and one cause, using the
cycle model's own phase and fill functions (no second cost formula), and checks that the
parts add up to ``predict_cycles`` for the image (the RTL's cycle counter): a disagreement
raises instead of drawing a wrong picture. The causes (:data:`CAUSES`):

``first_layer``
    the fill side runs the first-layer block (reference MAC or digital PIM) on the pixels;
``scan``
    the fill side scans spike bitmaps (event scanner -> tap generator -> PE array, and the
    max-pool scan), including a kernel plane outside the input (one cycle);
``drain``
    the aggregation core's sweep (leak, add, fire, reset, write-back) is the longer side;
``overhead``
    the sequencer's own cycles: ``PHASE``/``WAIT``/``SWAP`` of every phase, a phase with
    neither side busy, ``GROUP``, ``LOAD``/``NEXT`` and the final ``DONE``.

A phase lasts ``max(1, F, D) + 2``: the longer side is charged (the fill side when ``F ==
D``); the other side's work is hidden under it and costs nothing.
"""

from types import SimpleNamespace

from ..rtl.aggregation import AggregationCore
from ..rtl.cycle_model import _fill, _phase, predict_cycles, segment_rows

__all__ = ["CAUSES", "cycle_causes"]

CAUSES = ("first_layer", "scan", "drain", "overhead")


def _fill_parts(program, plan, row_of, spikes, step):
    """``F`` of one phase split by cause (the cycle model's ``_fill`` per segment)."""
    parts = {"first_layer": 0, "scan": 0}
    for segment in plan.segments:
        alone = SimpleNamespace(segments=(segment,), groups=plan.groups,
                                positions=plan.positions)
        cause = "first_layer" if segment.kind == "mac" else "scan"
        parts[cause] += _fill(program, alone, row_of, spikes, step)
    return parts


def _charge(totals, fill_parts, drain):
    """Add one phase (fill parts, drain ``D``) to ``totals``; return its cycles."""
    fill = sum(fill_parts.values())
    cycles = _phase(fill, drain)
    longest = max(fill, drain)
    if longest == 0:
        totals["overhead"] += cycles
    elif fill >= drain:
        for cause, value in fill_parts.items():
            totals[cause] += value
        totals["overhead"] += cycles - fill
    else:
        totals["drain"] += drain
        totals["overhead"] += cycles - drain
    return cycles


def cycle_causes(program, input_spikes):
    """Cycles of one image per layer and cause.

    Parameters
    ----------
    program : rtl.program.Program
    input_spikes : dict
        As for :func:`~spikeforge.rtl.cycle_model.predict_cycles`.

    Returns
    -------
    dict
        ``{"total": int, "layers": [{"name", "cycles", "causes": {cause: int}}, ...]}``;
        the sequencer's final ``DONE`` cycle is charged to the last layer's overhead.

    Raises
    ------
    AssertionError
        The parts do not add up to ``predict_cycles`` (the schedule here is out of date).
    """
    timesteps = program.network.timesteps
    row_of = segment_rows(program)

    nothing = {"first_layer": 0, "scan": 0}
    layers = []
    for plan in program.layers:
        totals = dict.fromkeys(CAUSES, 0)
        totals["overhead"] += 2                              # LOAD, NEXT
        if plan.pool:
            totals["overhead"] += 1                          # its one GROUP
            for t in range(timesteps):
                _charge(totals, _fill_parts(program, plan, row_of, input_spikes, t), 0)
        else:
            drain = plan.positions + AggregationCore.LATENCY + 1
            steps = 1 if plan.direct else timesteps          # a direct layer fills once
            fills = [_fill_parts(program, plan, row_of, input_spikes, t) for t in range(steps)]
            for _ in range(plan.groups):                     # every group has the same fills
                totals["overhead"] += 1                      # GROUP
                _charge(totals, fills[0], 0)
                if plan.direct:
                    for _ in range(timesteps):
                        _charge(totals, nothing, drain)
                    continue
                for t in range(1, timesteps):
                    _charge(totals, fills[t], drain)
                _charge(totals, nothing, drain)
        layers.append({"name": plan.name, "cycles": sum(totals.values()), "causes": totals})
    layers[-1]["causes"]["overhead"] += 1                    # DONE
    layers[-1]["cycles"] += 1
    total = sum(layer["cycles"] for layer in layers)
    expected = predict_cycles(program, input_spikes)
    assert total == expected, (f"the cycle breakdown adds up to {total} cycles but the "
                               f"cycle model predicts {expected}")
    return {"total": total, "layers": layers}
