"""The golden model: a bit-exact integer SNN in NumPy (no torch), and the model bundle.

``docs/neuron.md`` is the arithmetic it implements; ``docs/bundle.md`` the file it reads.
"""

from .bundle import (
    BundleError, FORMAT_VERSION, read_bundle, write_bundle, network_from_parts, network_to_parts,
)
from .model import GoldenResult, LayerTrace, check_input, quantize_input, run
from .network import InputSpec, Layer, Leak, Network, Neuron

__all__ = [
    "BundleError",
    "FORMAT_VERSION",
    "GoldenResult",
    "InputSpec",
    "Layer",
    "LayerTrace",
    "Leak",
    "Network",
    "Neuron",
    "check_input",
    "network_from_parts",
    "network_to_parts",
    "quantize_input",
    "read_bundle",
    "run",
    "write_bundle",
]
