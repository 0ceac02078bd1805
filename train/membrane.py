"""Re-export a bundle at a narrower membrane width (the membrane-precision sweep).

SpQuant-SNN (Hasssan et al., Front. Neurosci. 18:1440000, 2024) argues that the membrane
potential need not be wide. :func:`narrow_network` tests that on a trained bundle without
retraining: it rewrites the network for ``membrane_bits = B`` so that it stays a valid bundle
and computes nearly the same spikes, and ``spikeforge sweep membrane`` measures the golden
model's accuracy for each ``B``.

Method. An IF neuron (no leak or a shift leak, reset by subtraction or to zero, initial
membrane ``0`` or ``theta >> 1``) behaves the same when its current, bias, threshold and
initial membrane are all multiplied by one positive factor. A ``B``-bit membrane holds
``-2**(B-1) .. 2**(B-1) - 1``, so every layer whose threshold exceeds ``2**(B-2)`` (the factor
two of headroom the trainer leaves, :func:`spikeforge.train.quant.theta_max`) is scaled down by
``2**-k``, the smallest ``k`` that makes it fit:

- a layer that reads spikes: ``W``, ``b`` and ``theta`` become ``round(x / 2**k)`` (round half
  to even; ``theta`` at least 1). Its weights lose ``k`` bits of precision. Half to even, not
  half up: halving rounds every odd weight, and half up would push all of them the same way,
  a positive drift of the current (measured on ``mnist_vgg`` at 7 bits, first 1000 t10k
  images: 8.9 % with half up, 98.8 % with half to even).
- the direct-encoded first layer(s): the factor is split between the input and the weights.
  Each halving is taken from whichever still has more bits: the input's ``bits`` (the bundle's
  ``input.bits`` shrinks, so the pixels are quantized more coarsely by ``quantize_input``) or
  the weights' magnitude ``log2(max |W|)``. An input of ``bits - j`` bits scales the pixels by
  ``r = (2**(bits - j) - 1) / (2**bits - 1)``; ``b`` and ``theta`` are scaled by the same total
  factor. All direct-encoded layers share the input, so they share ``j``.
- a residual ``add``: its threshold and the scales of its spike inputs are divided, and so are
  the weights and biases of the synaptic layers whose currents it sums.
- the output layer (membrane readout, no threshold) must hold the sum of ``T`` currents: its
  ``k`` is the smallest that brings the largest ``|V|`` the *original* network's output
  reaches on calibration images (training images, never test images) within
  ``2**(B-1) - 1``. Without calibration images its ``k`` is 0.

The membrane saturates (``docs/neuron.md`` section 4) where a narrowed layer's charge exceeds the
range; negative excursions are clipped at ``-2**(B-1)``, about ``-2 * theta`` to ``-4 * theta``
after narrowing, much like SpQuant-SNN's clamp of the membrane to ``[lb, theta]``. Layers that
already fit keep their integers exactly, so a width at which every layer fits (``B`` at least
the bundle's own width, whose thresholds are at most ``2**(B-2)`` by construction) gives the
identical network and the identical accuracy. Avg-pool neurons (threshold ``kh * kw``) cannot be
rescaled; a width too narrow for them raises ``ValueError``.
"""

import math

import numpy as np

from spikeforge import golden
from spikeforge.golden.network import smallest_shift

__all__ = ["MIN_MEMBRANE_BITS", "output_peak", "narrow_network"]

#: The narrowest width the sweep accepts (a threshold of 1 and a 2-bit headroom).
MIN_MEMBRANE_BITS = 4


def _round(x):
    """Round half to even (unbiased; the module docstring says why)."""
    return np.rint(np.asarray(x, dtype=np.float64)).astype(np.int64)


def output_peak(network, x, *, chunk=25):
    """Largest ``|V|`` of the output layer over all timesteps for the integer inputs ``x``."""
    name, peak = network.output_layer.name, 0
    for first in range(0, len(x), chunk):
        trace = golden.run(network, x[first:first + chunk], trace=True).traces[name]
        peak = max(peak, int(np.abs(trace.membrane).max()))
    return peak


def _magnitude_bits(weight):
    largest = int(np.abs(weight).max()) if weight.size else 0
    return math.log2(largest) if largest > 0 else 0.0


def narrow_network(network, bits, *, peak=None):
    """``network`` rewritten for a ``bits``-bit membrane (module docstring).

    Parameters
    ----------
    network : spikeforge.golden.Network
    bits : int
        The new ``membrane_bits``, at least :data:`MIN_MEMBRANE_BITS`.
    peak : int, optional
        Largest ``|V|`` of the original output layer on calibration images
        (:func:`output_peak`); ``None`` leaves the output layer unscaled.

    Returns
    -------
    network : spikeforge.golden.Network
        The narrowed network (validated like any bundle; its metadata gains ``"membrane_sweep"``
        with the shifts).
    shifts : dict
        Layer name -> ``k`` for every rescaled layer, plus ``"input_bits"`` (the new input
        width) when the input was narrowed.
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < MIN_MEMBRANE_BITS:
        raise ValueError(f"membrane width {bits!r} is not an integer of at least "
                         f"{MIN_MEMBRANE_BITS} bits")
    manifest, arrays = golden.network_to_parts(network)
    arrays = {key: np.asarray(value).astype(np.int64) for key, value in arrays.items()}
    objects = {obj["name"]: obj for obj in manifest["layers"]}
    limit = 1 << (bits - 2)
    shifts = {}

    def scale_synaptic(name, factor, bias_factor=None):
        weight_bits = objects[name]["weight_bits"]
        top = (1 << (weight_bits - 1)) - 1
        arrays[f"{name}.weight"] = np.clip(_round(arrays[f"{name}.weight"] * factor), -top - 1,
                                           top)
        if f"{name}.bias" in arrays:
            bias_factor = factor if bias_factor is None else bias_factor
            arrays[f"{name}.bias"] = _round(arrays[f"{name}.bias"] * bias_factor)

    # The direct-encoded layers: split each one's halvings between the input and the weights;
    # they share the input, so the largest input cut applies to all of them.
    direct = [layer for layer in network.layers if layer.is_synaptic and layer.is_direct_encoded]
    input_bits, needs, input_cut = network.input.bits, {}, 0
    for layer in direct:
        if layer.output == "current":
            needs[layer.name] = 0
            continue
        need = needs[layer.name] = smallest_shift(layer.neuron.threshold, limit)
        room_w, cut_in, cut_w = _magnitude_bits(layer.weight), 0, 0
        for _ in range(need):   # ties go to the input; it keeps at least 1 bit
            if input_bits - cut_in > 1 and input_bits - cut_in >= room_w - cut_w:
                cut_in += 1
            else:
                cut_w += 1
        input_cut = max(input_cut, cut_in)
    if input_cut and any(layer.output == "current" for layer in direct):
        raise ValueError("a direct-encoded layer feeds a residual add, so the input cannot be "
                         "narrowed")
    weight_cuts = {name: max(0, need - input_cut) for name, need in needs.items()}
    if input_cut:
        ratio = ((1 << (input_bits - input_cut)) - 1) / ((1 << input_bits) - 1)
        manifest["input"] = {**manifest["input"], "bits": input_bits - input_cut}
        shifts["input_bits"] = input_bits - input_cut
    else:
        ratio = 1.0
    for layer in direct:
        cut = weight_cuts[layer.name]
        factor = ratio / (1 << cut)
        if factor != 1.0:   # the pixels carry `ratio`, the weights `2**-cut`
            scale_synaptic(layer.name, 1.0 / (1 << cut), factor)
            neuron = objects[layer.name].get("neuron") or {}
            if neuron.get("threshold") is not None:
                neuron["threshold"] = max(1, int(_round(neuron["threshold"] * factor)))
            shifts[layer.name] = cut

    for layer in network.layers:
        if layer.neuron is None or (layer.is_synaptic and layer.is_direct_encoded):
            continue
        if layer.output == "membrane":
            k = 0 if peak is None else smallest_shift(peak, (1 << (bits - 1)) - 1)
        else:
            k = smallest_shift(layer.neuron.threshold, limit)
        if layer.neuron.leak.kind == "shift" and layer.neuron.leak.shift > bits - 1:
            raise ValueError(f"layer {layer.name!r} has a shift leak of {layer.neuron.leak.shift}"
                             f", more than a {bits}-bit membrane allows")
        if k == 0:
            continue
        factor = 1.0 / (1 << k)
        if layer.type == "avgpool2d":
            raise ValueError(f"avg-pool layer {layer.name!r} has threshold "
                             f"{layer.neuron.threshold}, too large for a {bits}-bit membrane")
        obj = objects[layer.name]
        if layer.neuron.threshold is not None:
            obj["neuron"]["threshold"] = max(1, int(_round(layer.neuron.threshold * factor)))
        if layer.is_synaptic:
            scale_synaptic(layer.name, factor)
        else:  # add: its spike inputs' scales and its current inputs' weights
            scales = []
            for source, scale in zip(layer.inputs, layer.scales):
                producer = network.layer(source)
                if producer.output == "current":
                    if not producer.is_synaptic:
                        raise ValueError(f"add {layer.name!r} sums the avg-pool current of "
                                         f"{source!r}, which cannot be rescaled")
                    scale_synaptic(source, factor)
                    scales.append(scale)
                else:
                    scales.append(int(_round(scale * factor)))
            obj["scales"] = scales
        shifts[layer.name] = k

    manifest["membrane_bits"] = bits
    manifest["metadata"] = {**manifest["metadata"],
                            "membrane_sweep": {"original_bits": network.membrane_bits,
                                               "shifts": dict(shifts)}}
    arrays = {key: value.astype(np.int8 if key.endswith(".weight") else np.int32)
              for key, value in arrays.items()}
    return golden.network_from_parts(manifest, arrays), shifts
