"""spikeforge.sim: simulation helpers and harnesses (Amaranth simulator; cocotb later)."""
