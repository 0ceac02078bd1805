"""The exactness check every training test uses: PyTorch's integer simulation
(``spikeforge.train.intsim``) against the golden model on the same integer inputs."""

import numpy as np

from spikeforge import golden
from spikeforge.train import intsim


def assert_bit_exact(network, x):
    """Run both on ``x``; every spike, membrane and current the golden model traces, the output
    membrane and the predictions must be equal (exact equality), and the integer simulation must
    record no spikes or membranes the golden model does not have. Returns the golden result."""
    reference = golden.run(network, x, trace=True)
    result = intsim.run(network, x)
    for layer in network.layers:
        trace = reference.traces[layer.name]
        for kind, mine in (("spikes", result.spikes), ("membrane", result.membranes),
                           ("current", result.currents)):
            expected = getattr(trace, kind)
            if expected is None:
                assert layer.name not in mine or kind == "current", (kind, layer.name)
                continue
            np.testing.assert_array_equal(mine[layer.name].numpy(), expected,
                                          err_msg=f"{kind} of {layer.name}")
    np.testing.assert_array_equal(result.output_membrane.numpy(), reference.output_membrane)
    np.testing.assert_array_equal(result.predictions.numpy(), reference.predictions)
    return reference
