"""Batched scoreboard: trace records of a Verilog run against the golden trace.

The Amaranth harness (``sim/harness.py``) checks each membrane row in the cycle it is
written. A Verilog testbench would pay a Python call per lane that way, so the cocotb bench
(``sim/cocotb_bench.py``) only records the raw ``trace__record`` words with their cycles, and
:class:`TraceChecker` compares a whole image at once with NumPy. The answer is the same as
the harness's: the first record (in cycle order) that disagrees, its membrane lanes before
its spike lanes, as a :class:`~spikeforge.sim.harness.Mismatch` with the same fields.
"""

import numpy as np

from ..rtl.host_port import trace_record_layout, trace_widths, unpack_rows
from ..rtl.layout import descriptor_neuron as neuron_of, descriptor_values
from ..rtl.sequencer import descriptor_widths
from .harness import Mismatch

__all__ = ["TraceChecker", "record_layout", "unpack_bits"]


def record_layout(config, sizes):
    """The ``trace__record`` layout of ``Top(config=config, sizes=sizes)``."""
    widths = descriptor_widths(config, bias_depth=sizes.bias_depth,
                               max_layers=sizes.max_layers)
    return trace_record_layout(**trace_widths(config, widths))


def unpack_bits(words, offset, count):
    """Bits ``offset .. offset + count - 1`` of each int in ``words``, as a
    ``(len(words), count)`` int64 array of 0/1.

    Taken 32 bits at a time: a 64-lane spike field does not fit an int64 once lane 63 fires.
    """
    bits = np.zeros((len(words), count), dtype=np.int64)
    for start in range(0, count, 32):
        width = min(32, count - start)
        chunk = np.array([(word >> (offset + start)) & ((1 << width) - 1) for word in words],
                         dtype=np.int64)
        bits[:, start:start + width] = (chunk[:, None] >> np.arange(width)) & 1
    return bits

class TraceChecker:
    """Compare trace records and read-back membranes with ``golden.run(..., trace=True)``.

    Parameters
    ----------
    program : rtl.program.Program
    sizes : rtl.sizing.MemorySizes
        The ``Top`` memory sizes of the design.
    golden : golden.GoldenResult
        The golden run of the images, with traces.
    """

    def __init__(self, program, sizes, golden):
        self.program = program
        self.golden = golden
        config = program.config
        self.lanes = config.pes
        self.membrane_bits = config.core_membrane_bits  # of the trace and host rows
        self.fields = {name: (field.offset, field.width)
                       for name, field in record_layout(config, sizes)}

    def _expected(self, index):
        """Per descriptor: (T, groups * lanes, positions) membranes and spikes, or None."""
        table = []
        for plan in self.program.layers:
            if plan.pool:  # no neurons: checked through the layers that read its bitmap
                table.append(None)
                continue
            trace = self.golden.traces[plan.name]
            steps = trace.membrane.shape[0]
            padded = (steps, plan.groups * self.lanes, plan.positions)
            membranes = np.zeros(padded, dtype=np.int64)
            membranes[:, :plan.channels] = descriptor_values(plan, trace.membrane[:, index])
            spikes = np.zeros(padded, dtype=np.int64)
            if trace.spikes is not None:
                spikes[:, :plan.channels] = descriptor_values(plan, trace.spikes[:, index])
            table.append((membranes, spikes))
        return table

    def _field(self, words, name):
        # Narrow fields only (layer, group, step, position): they fit an int64.
        offset, width = self.fields[name]
        mask = (1 << width) - 1
        return np.array([(word >> offset) & mask for word in words], dtype=np.int64)

    def check_records(self, index, number, cycles, words):
        """The first disagreement of image ``index`` (numbered ``number``), or ``None``.

        ``cycles`` and ``words`` are the records' cycles (``0`` samples ``start``) and raw
        ``trace__record`` values, in order.
        """
        if not words:
            return None
        lanes = self.lanes
        layer = self._field(words, "layer")
        group = self._field(words, "group")
        step = self._field(words, "step")
        position = self._field(words, "position")
        offset, width = self.fields["membrane"]
        got = unpack_rows([(w >> offset) & ((1 << width) - 1) for w in words],
                          bits=self.membrane_bits, lanes=lanes)
        got_spikes = unpack_bits(words, self.fields["spikes"][0], lanes)
        count = len(words)
        bad_membrane = np.zeros((count, lanes), dtype=bool)
        bad_spike = np.zeros((count, lanes), dtype=bool)
        want = np.zeros((count, lanes), dtype=np.int64)
        want_spikes = np.zeros((count, lanes), dtype=np.int64)
        unexpected = np.ones(count, dtype=bool)
        lane = np.arange(lanes)
        for desc, expected in enumerate(self._expected(index)):
            if expected is None:
                continue
            plan = self.program.layers[desc]
            membranes, spikes = expected
            rows = np.flatnonzero((layer == desc) & (step >= 1) & (step <= membranes.shape[0])
                                  & (group < plan.groups) & (position < plan.positions))
            unexpected[rows] = False
            channel = group[rows, None] * lanes + lane
            live = channel < plan.channels
            t, p = step[rows, None] - 1, position[rows, None]
            want[rows] = membranes[t, channel, p]
            want_spikes[rows] = spikes[t, channel, p]
            bad_membrane[rows] = live & (got[rows] != want[rows])
            bad_spike[rows] = live & (got_spikes[rows] != want_spikes[rows])
        failing = np.flatnonzero(unexpected | bad_membrane.any(1) | bad_spike.any(1))
        if not len(failing):
            return None
        first = failing[0]
        cycle = int(cycles[first])
        if unexpected[first]:
            return Mismatch(image=number, cycle=cycle, layer=f"descriptor {int(layer[first])}",
                            what="membrane write (no such row)", timestep=int(step[first]),
                            neuron=(int(group[first]) * lanes, 0, int(position[first])),
                            expected=0, got=1)
        plan = self.program.layers[int(layer[first])]
        if bad_membrane[first].any():
            what, lane_, expected, have = "membrane", np.argmax(bad_membrane[first]), want, got
        else:
            what, lane_ = "spike", np.argmax(bad_spike[first])
            expected, have = want_spikes, got_spikes
        return Mismatch(image=number, cycle=cycle, layer=plan.name, what=what,
                        timestep=int(step[first]),
                        neuron=neuron_of(plan, int(group[first]) * lanes + int(lane_),
                                         int(position[first])),
                        expected=int(expected[first, lane_]), got=int(have[first, lane_]))

    def output_membrane(self, rows):
        """The output layer's membranes, in golden order, from its read-back rows.

        ``rows`` are the raw membrane-memory words ``0 .. groups * positions - 1``.
        """
        plan = self.program.layers[-1]
        values = unpack_rows(rows, bits=self.membrane_bits, lanes=self.lanes)
        # Row g * positions + p holds lanes = channels g * lanes ...; golden order is (c, p).
        grid = values.reshape(plan.groups, plan.positions, self.lanes).transpose(0, 2, 1)
        return grid.reshape(plan.groups * self.lanes, plan.positions)[:plan.channels].reshape(
            -1).tolist()

    def check_output(self, index, number, cycle, output):
        """The first output-membrane disagreement (as the harness reports it), or ``None``."""
        plan = self.program.layers[-1]
        expected = self.golden.output_membrane[index].tolist()
        for neuron, (want, have) in enumerate(zip(expected, output)):
            if want != have:
                channel, position = divmod(neuron, plan.positions)
                return Mismatch(image=number, cycle=cycle, layer=plan.name,
                                what="output membrane", timestep=None,
                                neuron=neuron_of(plan, channel, position),
                                expected=int(want), got=int(have))
        return None
