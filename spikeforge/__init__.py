"""spikeforge: PyTorch SNN -> integer bundle -> bit-exact golden model -> Amaranth RTL -> PYNQ-Z2.

The subpackages live in the repository's top-level folders (see ``pyproject.toml``):
``spikeforge.golden`` (golden/), ``spikeforge.train`` (train/), ``spikeforge.rtl`` (rtl/),
``spikeforge.sim`` (sim/), ``spikeforge.boards`` (boards/), ``spikeforge.tools`` (tools/).
"""

__version__ = "0.1.0"
