"""Golden model vs snnTorch speed on the same integer conv SNN; see ``spikeforge.tools.bench``.

Usage: ``python bench/golden_vs_snntorch.py [--batch 256] [--timesteps 8] [--repeats 5]
[--json]``, the same as ``spikeforge bench golden``. Needs ``pip install spikeforge[bench]``.
"""

import sys

from spikeforge.tools.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "golden", *sys.argv[1:]]))
