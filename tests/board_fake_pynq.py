"""A stand-in for the PYNQ side backed by the Amaranth simulation of the PS-attached top.

The driver (``boards/driver.py``) runs in the test's thread and calls ``mmio.read``/``write``,
``dma.*channel.transfer``/``wait`` and ``allocate`` as on the board. Each call becomes a
request to one testbench that runs the simulator in a second thread: an AXI4-Lite read or
write on the ``s_axi_*`` ports, or the AXI DMA's work on ``s_axis_*``/``m_axis_*``, cycle by
cycle. The simulator only advances while a request is served, so the design sees the
driver's exact sequence. Every MMIO access is logged as ``(op, offset, value)``.
"""

import queue
import threading

import numpy as np
from amaranth.sim import Simulator

from spikeforge.sim.streams import StreamTimeout

#: Cycles one AXI handshake, or one DMA transfer, may take.
AXI_TIMEOUT = 64
DMA_TIMEOUT = 200_000
PERIOD = 8e-9


class _Channel:
    def __init__(self, board, name):
        self._board, self._name = board, name

    def transfer(self, buffer):
        self._board.call("transfer", self._name, buffer)

    def wait(self):
        self._board.call("wait", self._name)

    @property
    def idle(self):
        # Serves the transfer to its end (the simulation moves only while a call is served),
        # so the driver's first poll finds the channel idle.
        self._board.call("wait", self._name)
        return True


class _DMA:
    def __init__(self, board):
        self.sendchannel = _Channel(board, "send")
        self.recvchannel = _Channel(board, "recv")


class _MMIO:
    def __init__(self, board):
        self._board = board

    def read(self, offset):
        return self._board.call("read", offset)

    def write(self, offset, value):
        self._board.call("write", offset, value)


class SimulatedPynq:
    """``mmio``, ``dma`` and ``allocate`` of a simulated board (use as a context manager)."""

    def __init__(self, dut):
        self.dut = dut
        self.mmio, self.dma = _MMIO(self), _DMA(self)
        self.log = []
        self._requests, self._replies = queue.Queue(), queue.Queue()
        self._send = None      # bytes still to send
        self._recv = None      # [buffer, words received]
        self._thread = threading.Thread(target=self._simulate, daemon=True)

    @staticmethod
    def allocate(shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._requests.put(("stop",))
        self._thread.join(timeout=60)

    def call(self, *request):
        self._requests.put(request)
        kind, value = self._replies.get(timeout=600)
        if kind == "error":
            raise value
        return value

    # ---------------------------------------------------------------- simulator thread

    def _simulate(self):
        try:
            sim = Simulator(self.dut)
            sim.add_process(self._clock)
            sim.add_testbench(self._server)
            sim.run()
        except BaseException as error:  # noqa: BLE001 - handed to the driver's thread
            self._replies.put(("error", error))

    async def _clock(self, ctx):
        # The top's clock is its aclk port (125 MHz), not a simulator-made domain clock.
        while True:
            ctx.set(self.dut.aclk, 1)
            await ctx.delay(PERIOD / 2)
            ctx.set(self.dut.aclk, 0)
            await ctx.delay(PERIOD / 2)

    async def _tick(self, ctx):
        """One cycle, with the DMA's streams served on it."""
        dut = self.dut
        if self._send:
            beat = self._send[:4]
            ctx.set(dut.s_axis_tdata, int.from_bytes(beat.ljust(4, b"\0"), "little"))
            ctx.set(dut.s_axis_tkeep, (1 << len(beat)) - 1)
            ctx.set(dut.s_axis_tlast, len(self._send) <= 4)
            ctx.set(dut.s_axis_tvalid, 1)
        else:
            ctx.set(dut.s_axis_tvalid, 0)
        ctx.set(dut.m_axis_tready, self._recv is not None and self._recv[1] is not None)
        _, _, s_valid, s_ready, m_valid, m_ready, m_data, m_last = await ctx.tick().sample(
            dut.s_axis_tvalid, dut.s_axis_tready, dut.m_axis_tvalid, dut.m_axis_tready,
            dut.m_axis_tdata, dut.m_axis_tlast)
        if s_valid and s_ready:
            self._send = self._send[4:]
        if m_valid and m_ready:
            buffer, words = self._recv
            words.append(m_data)
            if m_last:
                buffer[:len(words)] = words
                self._recv = [buffer, None]  # done

    async def _until(self, ctx, condition, what, limit=AXI_TIMEOUT):
        for _ in range(limit):
            if condition():
                return
            await self._tick(ctx)
        raise StreamTimeout(f"{what} not within {limit} cycles")

    async def _receive(self, ctx):
        """Wait for the result packet; the run's idle cycles pass without Python per cycle."""
        dut = self.dut
        await self._until(ctx, lambda: not self._send, "DMA MM2S", DMA_TIMEOUT)
        if self._recv[1] is not None and not ctx.get(dut.m_axis_tvalid):
            ctx.set(dut.m_axis_tready, 1)
            _, late = await ctx.posedge(dut.m_axis_tvalid).delay(DMA_TIMEOUT * PERIOD)
            if late:
                raise StreamTimeout(f"DMA S2MM: no result within {DMA_TIMEOUT} cycles")
        await self._until(ctx, lambda: self._recv[1] is None, "DMA S2MM", AXI_TIMEOUT * 64)

    async def _axi_write(self, ctx, offset, value):
        dut = self.dut
        ctx.set(dut.s_axi_awaddr, offset)
        ctx.set(dut.s_axi_wdata, value)
        ctx.set(dut.s_axi_wstrb, 0b1111)
        for valid, ready in ((dut.s_axi_awvalid, dut.s_axi_awready),
                             (dut.s_axi_wvalid, dut.s_axi_wready)):
            ctx.set(valid, 1)
            await self._until(ctx, lambda: ctx.get(ready), "AXI write handshake")
            await self._tick(ctx)
            ctx.set(valid, 0)
        await self._until(ctx, lambda: ctx.get(dut.s_axi_bvalid), "AXI write response")
        ctx.set(dut.s_axi_bready, 1)
        await self._tick(ctx)
        ctx.set(dut.s_axi_bready, 0)

    async def _axi_read(self, ctx, offset):
        dut = self.dut
        ctx.set(dut.s_axi_araddr, offset)
        ctx.set(dut.s_axi_arvalid, 1)
        await self._until(ctx, lambda: ctx.get(dut.s_axi_arready), "AXI read address")
        await self._tick(ctx)
        ctx.set(dut.s_axi_arvalid, 0)
        await self._until(ctx, lambda: ctx.get(dut.s_axi_rvalid), "AXI read data")
        value = ctx.get(dut.s_axi_rdata)
        ctx.set(dut.s_axi_rready, 1)
        await self._tick(ctx)
        ctx.set(dut.s_axi_rready, 0)
        return value

    async def _server(self, ctx):
        ctx.set(self.dut.aresetn, 0)
        await ctx.delay(34e-9)  # (ctx.tick() would raise DomainReset while in reset)
        ctx.set(self.dut.aresetn, 1)
        await ctx.tick()
        while True:
            request = self._requests.get()
            kind = request[0]
            if kind == "stop":
                return
            try:
                if kind == "write":
                    _, offset, value = request
                    self.log.append(("write", offset, value))
                    await self._axi_write(ctx, offset, value)
                    reply = None
                elif kind == "read":
                    _, offset = request
                    reply = await self._axi_read(ctx, offset)
                    self.log.append(("read", offset, reply))
                elif kind == "transfer":
                    _, channel, buffer = request
                    if channel == "send":
                        self._send = np.asarray(buffer).tobytes()
                    else:
                        self._recv = [buffer, []]
                    reply = None
                else:
                    _, channel = request
                    if channel == "send":
                        await self._until(ctx, lambda: not self._send, "DMA MM2S",
                                          DMA_TIMEOUT)
                    else:
                        await self._receive(ctx)
                    reply = None
            except StreamTimeout as error:
                self._replies.put(("error", error))
                continue
            self._replies.put(("value", reply))
