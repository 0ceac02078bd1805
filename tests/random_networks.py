"""The seeded random-network generator, for the tests that import it by this name.

It lives in ``spikeforge.sim.random_networks`` so that ``spikeforge regress`` can use it from
an installed package; see that module for what it draws.
"""

from spikeforge.sim.random_networks import TEMPLATES, random_input, random_network

__all__ = ["TEMPLATES", "random_network", "random_input"]
