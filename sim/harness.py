"""Scoreboard harness: runs the accelerator in the Amaranth simulator against the golden model.

:class:`Harness` lays a network out on a :class:`~spikeforge.rtl.top.Top`
(``rtl/program.py``), runs images one after another in one simulation and checks, in the
cycle it happens, every membrane row the aggregation sweep writes and every spike row it
hands to the spike writer against ``golden.run(..., trace=True)``, as the top level's trace
port shows them (``rtl/host_port.py``): its ``layer``/``group``/``step`` and the row's position
say which layer, timestep, channels and ``(y, x)`` it is. The first mismatch stops the run
with :class:`Mismatch` (cycle, layer, timestep, neuron, expected, got); when a waveform path
is given the image is run again on a fresh design with a VCD writer, up to the mismatch.
After each image the output layer's final membranes and the prediction are compared, and the
hardware counters with the cycle model's predictions (reported, not enforced, here). A
max-pool layer has no neurons: its bitmap is checked through the rows of the layer that reads
it.

A run that does not finish within ``max_cycles`` of its start fails with
:class:`~spikeforge.sim.streams.StreamTimeout`.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

from ..golden import run as golden_run
from ..rtl.cycle_model import counters_from_golden
from ..rtl.layout import descriptor_neuron, descriptor_values
from ..rtl.program import build_program
from ..rtl.sizing import design_for, sizes_for
from ..rtl.top import COUNTERS, Top
from .streams import StreamTimeout

__all__ = ["Mismatch", "ImageResult", "Harness"]


class _Reporting(list):
    """A list that hands every appended item to ``callback`` (``None``: a plain list)."""

    def __init__(self, callback):
        super().__init__()
        self._callback = callback

    def append(self, item):
        super().append(item)
        if self._callback is not None:
            self._callback(item)




class Mismatch(AssertionError):
    """The RTL disagrees with the golden model.

    Members
    -------
    image, cycle : int
        Image index and cycle (``0`` is the cycle that samples ``start``).
    layer : str
    what : str
        ``"membrane"``, ``"spike"``, ``"current"`` (a direct-encoded layer's current as the
        first-layer block writes it) or ``"output membrane"``.
    timestep : int or None
        1-based timestep.
    neuron : tuple
        ``(channel, y, x)`` (``(channel, d, y, x)`` in a 3D layer).
    expected, got : int
    vcd : Path or None
        The waveform written for this mismatch.
    """

    def __init__(self, *, image, cycle, layer, what, timestep, neuron, expected, got, vcd=None):
        self.image, self.cycle, self.layer, self.what = image, cycle, layer, what
        self.timestep, self.neuron, self.expected, self.got = timestep, neuron, expected, got
        self.vcd = vcd
        super().__init__(self.describe())

    def describe(self):
        step = "" if self.timestep is None else f", timestep {self.timestep}"
        axes = "channel, d, y, x" if len(self.neuron) == 4 else "channel, y, x"
        text = (f"image {self.image}, cycle {self.cycle}: layer {self.layer!r}{step}, neuron "
                f"({axes}) = {self.neuron}: {self.what} expected {self.expected}, "
                f"got {self.got}")
        return text if self.vcd is None else f"{text} (waveform: {self.vcd})"


@dataclass
class ImageResult:
    """One image's run: counters, prediction and the cycle model's figure."""

    image: int
    cycles: int
    predicted_cycles: int
    predicted_counters: dict
    counters: dict
    spike_counts: dict
    prediction: int
    expected_prediction: int
    output_membrane: list
    membrane_writes: list = field(default_factory=list)
    mismatch: Mismatch | None = None

    @property
    def passed(self):
        return self.mismatch is None


class Harness:
    """Run a network on the RTL, checked row by row against the golden model.

    Parameters
    ----------
    network : golden.Network
    config : AcceleratorConfig, optional
        Default: the design of ``rtl.sizing.design_for(network)`` (config and sizes).
    sizes : rtl.sizing.MemorySizes, optional
        The ``Top`` memory sizes; default what the network needs on ``config``
        (``rtl.sizing.sizes_for``).
    max_cycles : int
        Cycle bound of one image.
    fault : rtl.host_port.MembraneFault, optional
        Build the design with this test-only fault (one flipped membrane bit).

    Raises
    ------
    rtl.program.ProgramError
        The network does not fit the design.
    """

    def __init__(self, network, config=None, *, sizes=None, max_cycles=2_000_000, fault=None):
        self.network = network
        self.fault = fault
        if config is None:
            design = design_for(network)
            config, sizes = design.config, design.sizes if sizes is None else sizes
        self.config = config
        self.sizes = sizes_for(network, config) if sizes is None else sizes
        self.max_cycles = max_cycles
        self.program = build_program(network, self.config, self.sizes)

    def _top(self):
        top = Top(config=self.config, sizes=self.sizes, fault=self.fault)
        program = self.program
        top.descriptors.init = program.descriptors
        top.weights.init = program.weights
        top.biases.init = program.biases
        return top

    def expected(self, images):
        """``golden.run(..., trace=True)`` of the images (the scoreboard's reference)."""
        return golden_run(self.network, np.asarray(images), trace=True)

    def run_all(self, images, *, vcd_dir=None, first_index=0, progress=None):
        """Run every image even after a mismatch; return one :class:`ImageResult` each.

        A failed image's result has ``mismatch`` set (and ``cycles`` ``None``); the images
        after it run on a fresh design. With ``vcd_dir`` each failed image leaves
        ``vcd_dir / f"image{number}.vcd"``. ``progress``, when given, is called with each
        :class:`ImageResult` as soon as its image is finished.
        """
        images = np.asarray(images)
        golden = self.expected(images)
        results, start = [], 0
        while start < len(images):
            done = _Reporting(progress)
            try:
                self._simulate(images, golden, range(start, len(images)), False, first_index,
                               None, done)
            except Mismatch as mismatch:
                index = mismatch.image - first_index
                if vcd_dir is not None:
                    Path(vcd_dir).mkdir(parents=True, exist_ok=True)  # created when missing
                    path = Path(vcd_dir) / f"image{mismatch.image}.vcd"
                    try:
                        self._simulate(images, golden, [index], False, first_index, path, [])
                    except Mismatch as again:
                        again.vcd = path
                        again.args = (again.describe(),)
                        mismatch = again
                predicted = counters_from_golden(self.program, golden, index)
                done.append(ImageResult(
                    image=mismatch.image, cycles=None, predicted_cycles=predicted["cycles"],
                    predicted_counters=predicted,
                    counters={}, spike_counts={}, prediction=None,
                    expected_prediction=int(golden.predictions[index]), output_membrane=[],
                    mismatch=mismatch))
            results.extend(done)
            start += len(done)
        return results

    def run(self, images, *, golden=None, vcd=None, record_writes=False, first_index=0):
        """Run each image; return a list of :class:`ImageResult`.

        ``golden`` replaces the golden run (tests perturb it); ``vcd`` is the waveform path
        written when a mismatch happens; ``record_writes`` keeps every membrane write's
        ``(cycle, layer, timestep, group, position)``; ``first_index`` numbers the images.

        Raises
        ------
        Mismatch
            At the first disagreement.
        StreamTimeout
            An image does not finish within ``max_cycles``.
        """
        images = np.asarray(images)
        golden = self.expected(images) if golden is None else golden
        try:
            return self._simulate(images, golden, range(len(images)), record_writes,
                                  first_index, None, [])
        except Mismatch as mismatch:
            if vcd is None:
                raise
            index = mismatch.image - first_index
            path = Path(vcd)
            try:
                self._simulate(images, golden, [index], False, first_index, path, [])
            except Mismatch as again:
                again.vcd = path
                again.args = (again.describe(),)
                raise again from None
            raise  # pragma: no cover - a mismatch always reproduces

    def _simulate(self, images, golden, indices, record_writes, first_index, vcd, results):
        """Run ``indices`` in one simulation, appending to ``results`` as images finish."""
        top = self._top()
        sim = Simulator(top)
        sim.add_clock(1e-8)

        async def testbench(ctx):
            for index in indices:
                results.append(await self._image(ctx, top, images[index], golden, index,
                                                 first_index + index, record_writes))

        sim.add_testbench(testbench)
        if vcd is None:
            sim.run()
        else:
            with sim.write_vcd(str(vcd)):
                sim.run()
        return results

    def _expectations(self, golden, index):
        """Per descriptor: (T, C, positions) membranes and spikes of image ``index``, and
        the (C, positions) current of a direct-encoded layer (``None`` otherwise)."""
        table = []
        for plan in self.program.layers:
            trace = golden.traces[plan.name]
            if plan.pool:  # no neurons: checked through the layers that read its bitmap
                table.append((None, None, None))
                continue
            membranes = descriptor_values(plan, trace.membrane[:, index])
            spikes = (None if trace.spikes is None
                      else descriptor_values(plan, trace.spikes[:, index]))
            current = descriptor_values(plan, trace.current[0, index]) if plan.direct else None
            table.append((membranes, spikes, current))
        return table

    async def _image(self, ctx, top, image, golden, index, number, record_writes):
        program, lanes = self.program, self.config.pes
        for address, value in enumerate(program.pixels(image)):
            ctx.set(top.pixels[address], value)
        expect = self._expectations(golden, index)
        # The trace port: every membrane row as stored, with its spikes (rtl/host_port.py).
        trace, record = top.trace, top.trace.record
        # The first-layer block's bank writes: a direct-encoded layer's current (computed once).
        fill, seq = top.pingpong.fill, top.sequencer
        watch = (trace.valid, record.position, record.membrane, trace.valid, record.spikes,
                 record.layer, record.group, record.step, top.done,
                 fill.w_en & seq.desc.direct, fill.w_addr, fill.w_data, seq.layer, seq.group)
        writes = []
        ctx.set(top.start, 1)
        cycle = 0
        await ctx.tick()
        ctx.set(top.start, 0)

        def fail(what, layer, timestep, lane_channel, position, want, have):
            plan = program.layers[layer]
            raise Mismatch(image=number, cycle=cycle, layer=plan.name, what=what,
                           timestep=timestep,
                           neuron=descriptor_neuron(plan, lane_channel, position),
                           expected=int(want), got=int(have))

        while True:
            cycle += 1
            if cycle > self.max_cycles:
                raise StreamTimeout(f"image {number}: the accelerator did not finish within "
                                    f"{self.max_cycles} cycles")
            (_, _, w_en, w_addr, w_data, s_valid, s_row, layer, group, step, done, c_en,
             c_addr, c_data, c_layer, c_group) = await ctx.tick().sample(*watch)
            if c_en:
                current, base = expect[c_layer][2], c_group * lanes
                for lane in range(min(lanes, program.layers[c_layer].channels - base)):
                    if int(c_data[lane]) != current[base + lane, c_addr]:
                        fail("current", c_layer, None, base + lane, c_addr,
                             current[base + lane, c_addr], c_data[lane])
            if w_en:
                plan = program.layers[layer]
                membranes = expect[layer][0]
                base = group * lanes
                if record_writes:
                    writes.append((cycle, plan.name, step, group, w_addr))
                for lane in range(min(lanes, plan.channels - base)):
                    want = membranes[step - 1, base + lane, w_addr]
                    if int(w_data[lane]) != want:
                        fail("membrane", layer, step, base + lane, w_addr, want, w_data[lane])
            if s_valid:
                plan = program.layers[layer]
                reference = expect[layer][1]
                base = group * lanes
                bits = int(s_row)
                for lane in range(min(lanes, plan.channels - base)):
                    want = 0 if reference is None else reference[step - 1, base + lane, w_addr]
                    have = (bits >> lane) & 1
                    if have != want:
                        fail("spike", layer, step, base + lane, w_addr, want, have)
            if done:
                break
        return self._finish(ctx, top, golden, index, number, cycle, writes)

    def _finish(self, ctx, top, golden, index, number, cycle, writes):
        program, lanes = self.program, self.config.pes
        plan = program.layers[-1]
        output = []
        held = top.membranes if top.output_membranes is None else top.output_membranes
        for channel in range(plan.channels):
            group, lane = divmod(channel, lanes)
            for position in range(plan.positions):
                row = ctx.get(held[group * plan.positions + position])
                output.append(int(row[lane]))
        expected_output = golden.output_membrane[index].tolist()
        for neuron, (want, have) in enumerate(zip(expected_output, output)):
            if want != have:
                channel, position = divmod(neuron, plan.positions)
                raise Mismatch(image=number, cycle=cycle, layer=plan.name,
                               what="output membrane", timestep=None,
                               neuron=descriptor_neuron(plan, channel, position),
                               expected=want, got=have)
        counters = {name: int(ctx.get(getattr(top, name))) for name in COUNTERS}
        spike_counts = {p.name: int(ctx.get(top.spike_counts[i]))
                        for i, p in enumerate(program.layers) if not (p.output or p.pool)}
        prediction = int(np.argmax(output))
        predicted = counters_from_golden(program, golden, index)
        return ImageResult(image=number, cycles=counters["cycles"],
                           predicted_cycles=predicted["cycles"], predicted_counters=predicted,
                           counters=counters, spike_counts=spike_counts, prediction=prediction,
                           expected_prediction=int(golden.predictions[index]),
                           output_membrane=output, membrane_writes=writes)
