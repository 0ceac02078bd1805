"""The PS-attached accelerator's register map and memory numbering (``docs/board.md``).

One table shared by the register block (``boards/host_shell.py``), the PYNQ driver
(``boards/driver.py``) and the documentation, so that the offsets exist exactly once. Every
register is 32 bits wide at a byte offset that is a multiple of 4; AXI4-Lite writes
always write the whole word (``WSTRB`` is ignored) and reads of unlisted offsets return 0.

Loading a memory: write ``MEM_SELECT`` and ``MEM_ADDR`` (the first row), then write the rows'
32-bit words to ``MEM_DATA`` in order (word ``k`` of a row holds bits ``32 k .. 32 k + 31``
of the row, see :func:`row_words`); the row is written to the memory when its last word
arrives and ``MEM_ADDR`` moves to the next row. Reading is the mirror: ``MEM_RDATA`` returns
the next word of the row at ``MEM_ADDR`` of the selected memory (only ``MEMBRANES`` and
``SPIKE_COUNTS`` are readable).
"""

__all__ = ["MAGIC", "REGISTERS", "COUNTERS", "Memory", "READABLE", "WRITABLE", "row_words",
           "STATUS_BUSY", "STATUS_DONE", "STATUS_READOUT", "STATUS_ERROR",
           "MODE_AUTO_START", "MODE_STREAM_RESULTS", "IRQ_DONE", "CONTROL_START",
           "ADDR_WIDTH"]

#: ``ID`` register value: ASCII "SPKF".
MAGIC = 0x53504B46

#: AXI4-Lite address bits (a 4 KiB window).
ADDR_WIDTH = 12

#: Register name -> byte offset.
REGISTERS = {
    "ID": 0x00,             # RO  MAGIC
    "LANES": 0x04,          # RO  PEs of the design
    "WIDTHS": 0x08,         # RO  weight | psum << 8 | membrane << 16 | pixel bits << 24
    "CONFIG_HASH": 0x0C,    # RO  low 32 bits of the design hash (rtl.sizing.Design.hash)
    "CONTROL": 0x10,        # WO  bit 0: start a run (ignored while busy)
    "STATUS": 0x14,         # RO  STATUS_* bits
    "MODE": 0x18,           # RW  MODE_* bits
    "IRQ_ENABLE": 0x1C,     # RW  IRQ_* bits
    "IRQ_STATUS": 0x20,     # R/W1C  IRQ_* bits pending
    "PREDICTION": 0x24,     # RO  arg max of the last run's output membranes
    "OUT_CHANNELS": 0x28,   # RW  output layer channels (read out after a run)
    "OUT_POSITIONS": 0x2C,  # RW  output layer positions per channel (1 for linear)
    "MEM_SELECT": 0x30,     # RW  a Memory number
    "MEM_ADDR": 0x34,       # RW  row address (moves on by itself)
    "MEM_DATA": 0x38,       # WO  next word of the row being written
    "MEM_RDATA": 0x3C,      # RO  next word of the row being read
    "CYCLES": 0x40,         # RO  the counters of rtl/top.py, in COUNTERS order
    "PE_BUSY": 0x44,
    "AGGREGATION_BUSY": 0x48,
    "SCANNER_BUSY": 0x4C,
    "MAC_BUSY": 0x50,
    "OVERLAP": 0x54,
    "RUNS": 0x58,           # RO  runs finished since reset
}

#: Counter registers and the ``rtl.top.Top`` members they show.
COUNTERS = {
    "CYCLES": "cycles",
    "PE_BUSY": "pe_busy_cycles",
    "AGGREGATION_BUSY": "aggregation_busy_cycles",
    "SCANNER_BUSY": "scanner_busy_cycles",
    "MAC_BUSY": "mac_busy_cycles",
    "OVERLAP": "overlap_cycles",
}

CONTROL_START = 1 << 0

STATUS_BUSY = 1 << 0      # the accelerator runs
STATUS_DONE = 1 << 1      # a run and its read-out finished; cleared by the next start
STATUS_READOUT = 1 << 2   # the output membranes are being read out
STATUS_ERROR = 1 << 3     # a MEM_* access named an unknown or unreadable memory (sticky)

MODE_AUTO_START = 1 << 0      # start a run when an image's last AXI4-Stream beat arrives
MODE_STREAM_RESULTS = 1 << 1  # send each run's result packet on the output stream

IRQ_DONE = 1 << 0


class Memory:
    """Memory numbers for ``MEM_SELECT``: those of ``rtl.host_port.HostMemory`` (kept here as
    plain integers so that the board's Python needs no Amaranth)."""

    WEIGHTS = 0
    BIASES = 1
    DESCRIPTORS = 2
    PIXELS = 3
    MEMBRANES = 4
    SPIKE_COUNTS = 5

    #: Number -> name, in order.
    NAMES = ("weights", "biases", "descriptors", "pixels", "membranes", "spike_counts")


#: Memories ``MEM_DATA`` writes (rows of the host port, ``rtl/host_port.py``).
WRITABLE = (Memory.WEIGHTS, Memory.BIASES, Memory.DESCRIPTORS, Memory.PIXELS)
#: Memories ``MEM_RDATA`` can read; the others are write-only.
READABLE = (Memory.MEMBRANES, Memory.SPIKE_COUNTS)


def row_words(bits):
    """32-bit words per row of a memory whose rows are ``bits`` wide."""
    return max(1, -(-bits // 32))
