"""Metrics of quantization-aware pruning: sparsity, BOPs and neural efficiency / aIQ.

All three follow "Ps and Qs: Quantization-Aware Pruning for Efficient Low Latency Neural
Network Inference" (Hawks, Duarte, Fraser, Pappalardo, Tran, Umuroglu; Front. Artif. Intell.
4:676564, 2021; arXiv 2102.11289) and the authors' code (``ben-hawks/pytorch-jet-classify``:
``tools/param_count.py``, ``tools/aiq.py``). Sparsity and BOPs are computed from the *exported
integers* of a bundle (:class:`spikeforge.golden.Network`), so what is reported is what the
golden model and the hardware run; nothing here needs torch.

Sparsity
    The fraction of the integer weights of all synaptic layers that are exactly zero (pruned
    weights, and weights that quantize to zero). Biases are not weights and are not counted.

BOPs (bit operations; Ps and Qs, after Baskin et al., "UNIQ", ACM TOCS 2021)
    For a layer with ``n`` inputs per output, ``m`` outputs, weight bits ``b_w``, input
    (activation) bits ``b_a`` and fraction ``p`` of non-zero weights::

        BOPs = m * n * (p * b_a * b_w + b_a + b_w + log2(n))

    ``p * b_a * b_w`` counts the multiplications that remain, ``b_a + b_w + log2(n)`` the
    accumulator's additions (which the paper does not scale by ``p``, so BOPs saturate at high
    sparsity). The paper's network is fully connected; for a conv2d we read the formula per
    output element: ``m = C_out * H_out * W_out`` outputs, each a dot product of
    ``n = C_in * k_h * k_w`` inputs (padding taps included). ``b_a`` is the input's bits for the
    direct-encoded first layer (8-bit pixels) and, for later layers, the bits of the quantized
    ReLU the SNN was converted from, ``ceil(log2(T + 1))`` (its ``L = T`` levels ``0..T`` are
    the spike counts). ``p`` counts weights only; the authors' ``calc_BOPS`` also counts
    biases in ``p``. Pools, flatten and residual adds carry no weights and add no BOPs (the
    paper counts linear layers only).

Neural efficiency and aIQ (Ps and Qs section 2.3, after Schaub and Hotaling, "Assessing
Intelligence in Artificial Neural Networks", arXiv 2006.02909)
    Every layer's *microstate* for one input is the binary vector "activation > 0" of its
    neurons. For a layer with ``N`` neurons whose observed microstates occur with frequencies
    ``f_i``, the efficiency is the entropy over the maximal entropy,
    ``eta = -sum_i f_i log2 f_i / N``. The network efficiency is the geometric mean of the
    layers' ``eta``, and ``aIQ = (accuracy**beta * eta_net) ** (1 / (beta + 1))`` with
    ``beta = 2``. As in the authors' ``aiq.py`` the output layer is included (its microstate is
    "logit > 0"); a conv layer's microstate is its channel vector at one pixel (one sample per
    image and pixel), a linear layer's the whole vector. We take the microstates of the
    quantized-ReLU ANN the SNN is converted from (the ReLU outputs of the hidden layers), and
    the aIQ uses top-1 accuracy where the paper's jet tagger used the ROC AUC.
"""

import math

import numpy as np

__all__ = ["synaptic_layers", "weight_sparsity", "layer_sparsity", "activation_bits",
           "layer_bops", "bops", "layer_efficiency", "network_efficiency", "aiq"]

#: The exponent beta of aIQ, as in Ps and Qs.
AIQ_BETA = 2


def synaptic_layers(network):
    """The conv/linear layers of a golden network, in order."""
    return [layer for layer in network.layers if layer.is_synaptic]


def weight_sparsity(network):
    """Fraction of zero integer weights over all synaptic layers of ``network``."""
    zeros = total = 0
    for layer in synaptic_layers(network):
        zeros += int(np.count_nonzero(layer.weight == 0))
        total += int(layer.weight.size)
    return zeros / total if total else 0.0


def layer_sparsity(network):
    """Layer name -> fraction of its integer weights that are zero."""
    return {layer.name: float(np.count_nonzero(layer.weight == 0) / layer.weight.size)
            for layer in synaptic_layers(network)}


def activation_bits(timesteps):
    """Bits of a spike count ``0..T`` (the quantized ReLU's ``L = T + 1`` values)."""
    return max(1, math.ceil(math.log2(timesteps + 1)))


def layer_bops(*, outputs, fan_in, weight_bits, input_bits, nonzero_fraction):
    """``m * n * (p * b_a * b_w + b_a + b_w + log2(n))`` (module docstring), a float."""
    m, n, p = outputs, fan_in, nonzero_fraction
    return float(m * n * (p * input_bits * weight_bits + input_bits + weight_bits
                          + math.log2(n)))


def bops(network):
    """BOPs of every synaptic layer of ``network`` and their total.

    Returns
    -------
    dict
        ``{"total": float, "layers": {name: {"bops", "outputs", "fan_in", "weight_bits",
        "input_bits", "nonzero_fraction"}}}``.
    """
    later_bits = activation_bits(network.timesteps)
    layers, total = {}, 0.0
    for layer in synaptic_layers(network):
        fan_in = int(np.prod(layer.weight.shape[1:]))
        entry = {"outputs": int(np.prod(layer.out_shape)), "fan_in": fan_in,
                 "weight_bits": int(layer.weight_bits),
                 "input_bits": int(network.input.bits if layer.is_direct_encoded
                                   else later_bits),
                 "nonzero_fraction": float(np.count_nonzero(layer.weight) / layer.weight.size)}
        entry["bops"] = layer_bops(**{k: entry[k] for k in (
            "outputs", "fan_in", "weight_bits", "input_bits", "nonzero_fraction")})
        layers[layer.name] = entry
        total += entry["bops"]
    return {"total": total, "layers": layers}


def _microstates(activation):
    """(samples, neurons) boolean microstates of one layer's activation (N, C[, H, W])."""
    active = np.asarray(activation) > 0
    if active.ndim > 2:   # one microstate per image and pixel: the channel vector there
        active = np.moveaxis(active, 1, -1).reshape(-1, active.shape[1])
    return active.reshape(active.shape[0], -1)


def layer_efficiency(activation):
    """Entropy of the layer's observed microstates divided by its number of neurons.

    Parameters
    ----------
    activation : array (N, C) or (N, C, H, W)
        The layer's activations; a neuron is "on" where its value is > 0.

    Returns
    -------
    float
        ``-sum f_i log2 f_i / C`` over the distinct microstates ``i`` with frequency ``f_i``.
    """
    states = _microstates(activation)
    if states.shape[0] == 0:
        return 0.0
    packed = np.packbits(states, axis=1)
    _, counts = np.unique(packed, axis=0, return_counts=True)
    freq = counts / counts.sum()
    entropy = float(-(freq * np.log2(freq)).sum())
    return entropy / states.shape[1]


def network_efficiency(efficiencies):
    """Geometric mean of the layer efficiencies (0 when any layer has efficiency 0)."""
    values = np.asarray(list(efficiencies), dtype=np.float64)
    if values.size == 0 or np.any(values <= 0):
        return 0.0
    return float(np.exp(np.log(values).mean()))


def aiq(accuracy, efficiency, beta=AIQ_BETA):
    """``(accuracy**beta * efficiency) ** (1 / (beta + 1))``."""
    return float((accuracy ** beta * efficiency) ** (1.0 / (beta + 1)))
