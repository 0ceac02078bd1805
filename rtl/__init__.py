"""spikeforge.rtl: the Amaranth 0.5 accelerator (``docs/accelerator.md``).

Built block by block; ``rtl/interfaces.py`` holds the payloads and ports the blocks share.
"""
