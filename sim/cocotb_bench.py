"""cocotb test module: the generated Verilog against the golden model (run by ``sim/cosim.py``).

The simulator process imports this module; ``SPIKEFORGE_COSIM_JOB`` names the job file that
``sim/cosim.py`` wrote (config, memory sizes, network bundle, images, where to put the
results). One test, :func:`run_job`:

1. runs the golden model with traces and the cycle model on the images;
2. resets the design and loads the weight, bias and descriptor words through the host port;
3. per image: writes the pixels, pulses ``start``, records every trace record (raw word and
   cycle) until ``done``, reads the output layer's membranes and the spike counters back
   through the host port, and then checks the image at once with
   :class:`~spikeforge.sim.scoreboard.TraceChecker`;
4. writes ``results.json``.

Speed: Python runs only in cycles with a trace record (the monitor sleeps on
``trace__valid`` otherwise), reads one vector per record and leaves decoding and comparing to
NumPy at the end of the image. Inputs are driven and outputs sampled at falling clock edges,
so nothing races the rising edge the design samples on.

Cycle numbering is the harness's: cycle 0 samples ``start``; a record sampled at the falling
edge ``t`` is in cycle ``(t - t0) // period + 1`` where ``t0`` is cycle 0's rising edge.
"""

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, First, RisingEdge, Timer

from ..golden import read_bundle
from ..golden import run as golden_run
from ..rtl.config import AcceleratorConfig
from ..rtl.cycle_model import counters_from_golden
from ..rtl.host_port import HostMemory, host_words
from ..rtl.program import build_program
from ..rtl.sequencer import descriptor_layout, descriptor_widths
from ..rtl.sizing import MemorySizes
from ..rtl.top import COUNTERS
from .cosim import JOB_VARIABLE
from .scoreboard import TraceChecker

#: Clock period in simulator steps (1 ps precision, 10 ns period).
PERIOD_NS = 10
_STEPS = PERIOD_NS * 1000


def _reader(handle):
    """A fast ``() -> int`` for a signal: its raw value string, as the simulator gives it.

    ``handle.value`` builds a ``LogicArray`` per read, several times slower; the records
    are read once per trace cycle, so the raw string is worth it. An ``x`` or ``z`` bit
    raises ``ValueError`` here, as ``to_unsigned`` would.
    """
    raw = handle._handle  # the GPI object behind the handle
    return lambda: int(raw.get_signal_val_binstr(), 2)


class _Bench:
    """Host-port driver and trace monitor of one design (``dut``)."""

    def __init__(self, dut):
        self.dut = dut

    async def edge(self):
        await FallingEdge(self.dut.clk)

    async def reset(self):
        dut = self.dut
        for name in ("start", "host__w_en", "host__r_en", "host__w_sel", "host__r_sel",
                     "host__w_addr", "host__r_addr", "host__w_data"):
            getattr(dut, name).value = 0
        dut.rst.value = 1
        for _ in range(2):
            await self.edge()
        dut.rst.value = 0
        await self.edge()

    async def write(self, which, words):
        """Write ``words`` to addresses 0.. of memory ``which`` (one per cycle)."""
        dut = self.dut
        dut.host__w_sel.value = which.value
        dut.host__w_en.value = 1
        for address, word in enumerate(words):
            dut.host__w_addr.value = address
            dut.host__w_data.value = int(word)
            await self.edge()
        dut.host__w_en.value = 0

    async def read(self, which, count):
        """Read words 0 .. count - 1 of memory ``which`` (latency one cycle)."""
        dut = self.dut
        data = _reader(dut.host__r_data)
        dut.host__r_sel.value = which.value
        dut.host__r_en.value = 1
        words = []
        for address in range(count):
            dut.host__r_addr.value = address
            await self.edge()  # the rising edge in between took the address
            words.append(data())
        dut.host__r_en.value = 0
        return words

    async def run_image(self, max_cycles, stop_cycle):
        """Pulse ``start`` and record the trace until ``done``: (cycles, words, done cycle).

        ``None`` as the done cycle means the image did not finish within ``max_cycles``
        (or was stopped at ``stop_cycle``). Returns one cycle after ``done``, when the host
        port works again.
        """
        dut = self.dut
        valid, done = _reader(dut.trace__valid), _reader(dut.done)
        record = _reader(dut.trace__record)
        fall = FallingEdge(dut.clk)
        limit = max_cycles if stop_cycle is None else min(max_cycles, stop_cycle)
        dut.start.value = 1
        await fall
        dut.start.value = 0
        t0 = get_sim_time() - _STEPS // 2  # the rising edge that sampled start: cycle 0
        cycles, words = [], []
        cycle = 1  # this falling edge lies in cycle 1
        while True:
            if valid():
                cycles.append(cycle)
                words.append(record())
            elif done():
                await fall
                return cycles, words, cycle
            elif cycle >= limit:
                return cycles, words, None
            else:
                # Sleep until the next record or done: both rise just after a rising edge.
                timeout = Timer((limit - cycle) * _STEPS, unit="step")
                fired = await First(RisingEdge(dut.trace__valid), RisingEdge(dut.done),
                                    timeout)
                await fall
                cycle = (get_sim_time() - t0) // _STEPS + 1
                if fired is timeout:
                    cycle = max(cycle, limit)
                continue
            await fall
            cycle += 1


@cocotb.test()
async def run_job(dut):
    """Run the job named by ``SPIKEFORGE_COSIM_JOB``; write its results file."""
    job_path = Path(os.environ[JOB_VARIABLE])
    job = json.loads(job_path.read_text())
    folder = job_path.parent
    network = read_bundle(folder / job["network"])
    images = np.load(folder / job["images"])
    config = AcceleratorConfig.from_json(job["config"])
    sizes = MemorySizes.from_json(job["sizes"])
    program = build_program(network, config, sizes)
    golden = golden_run(network, images, trace=True)
    predicted_counters = [counters_from_golden(program, golden, i) for i in range(len(images))]
    predicted = [counters["cycles"] for counters in predicted_counters]
    checker = TraceChecker(program, sizes, golden)
    layout = descriptor_layout(**descriptor_widths(config, bias_depth=sizes.bias_depth,
                                                   max_layers=sizes.max_layers))

    Clock(dut.clk, PERIOD_NS, unit="ns").start(start_high=False)
    bench = _Bench(dut)
    await bench.reset()
    began = time.perf_counter()
    for which, words in host_words(program, layout).items():
        await bench.write(which, words)
    load_seconds = time.perf_counter() - began
    plan = program.layers[-1]
    results = []
    for index, image in enumerate(images):
        number = job["first_index"] + index
        began, cpu = time.perf_counter(), time.process_time()
        await bench.write(HostMemory.PIXELS, program.pixels(image))
        running = time.perf_counter()
        # A hung design fails fast: twice the cycle model's count is the bound.
        bound = min(job["max_cycles"], 2 * predicted[index] + 1000)
        cycles, words, done_cycle = await bench.run_image(bound, job.get("stop_cycle"))
        checking = time.perf_counter()
        result = {"image": number, "predicted_cycles": predicted[index],
                  "predicted_counters": predicted_counters[index],
                  "expected_prediction": int(golden.predictions[index]), "records": len(words),
                  "run_seconds": checking - running}
        mismatch = checker.check_records(index, number, cycles, words)
        result["check_seconds"] = time.perf_counter() - checking
        if done_cycle is None:
            results.append({**result, "cycles": None, "timeout": True,
                            "mismatch": None if mismatch is None else vars_of(mismatch),
                            "seconds": time.perf_counter() - began,
                            "cpu_seconds": time.process_time() - cpu})
            break
        rows = await bench.read(HostMemory.MEMBRANES, plan.groups * plan.positions)
        counts = await bench.read(HostMemory.SPIKE_COUNTS, len(program.layers))
        counters = {name: int(getattr(dut, name).value) for name in COUNTERS}
        output = checker.output_membrane(rows)
        if mismatch is None:
            mismatch = checker.check_output(index, number, done_cycle, output)
        results.append({
            **result, "cycles": counters["cycles"], "done_cycle": done_cycle,
            "timeout": False, "counters": counters,
            "spike_counts": {p.name: counts[i] for i, p in enumerate(program.layers)
                             if not (p.output or p.pool)},
            "prediction": int(np.argmax(output)), "output_membrane": output,
            "mismatch": None if mismatch is None else vars_of(mismatch),
            "seconds": time.perf_counter() - began,
            # The simulator's own CPU time (one thread): its speed on one core, even when
            # other processes share the machine.
            "cpu_seconds": time.process_time() - cpu,
        })
    summary = {"load_seconds": load_seconds, "images": results}
    (folder / job["results"]).write_text(json.dumps(summary))


def vars_of(mismatch):
    """The JSON form of a :class:`~spikeforge.sim.harness.Mismatch`."""
    return {"image": mismatch.image, "cycle": mismatch.cycle, "layer": mismatch.layer,
            "what": mismatch.what, "timestep": mismatch.timestep,
            "neuron": list(mismatch.neuron), "expected": mismatch.expected,
            "got": mismatch.got}
