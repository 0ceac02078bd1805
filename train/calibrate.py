"""Post-conversion bias calibration: correct the SNN's systematic over-firing, layer by layer.

Why. Only the direct-encoded first layer sees a constant current, so only there does an IF
neuron's spike count equal the quantized ReLU's level exactly. A later neuron's input spikes
arrive unevenly over the ``T`` steps; a neuron that receives its positive input early and its
negative input late fires spikes it cannot take back. Measured on ``mnist-vgg`` this makes every
hidden layer fire 0.03-0.12 spikes per neuron more than its rate-ideal count, and the error
compounds with depth (95 % SNN accuracy against a 99.5 % quantized ANN at T = 8).

What. The rate-ideal counts are what the exported integers compute when every layer passes on
spike *counts* (:func:`ideal_counts`): ``clip(round_half_up(total / theta), 0, T)`` of the total
current over ``T`` steps, max/average of counts for pools, the scaled sum for an add. For
``T = L`` this is the quantized ANN itself, in integers. :func:`calibrate_biases` then goes
through the spiking layers in order and, per output channel, subtracts from the integer bias
the mean excess ``e`` of the SNN's counts over the ideal ones on training images:
``b -= round_half_up(e * theta / T)`` (one bias step changes a neuron's count by ``T / theta``
over ``T`` steps). Each layer is measured after the layers before it were corrected. An add is
corrected through the bias of its first current input (which it sums with scale 1). This is the
bias correction of Li et al., "A free lunch from ANN: towards efficient, accurate spiking neural
networks calibration" (ICML 2021), restricted to integer biases.

Weights, thresholds and scales stay exactly the trained integers; only biases move, and the
result is an ordinary bundle (the golden model and the integer simulation need nothing new).
"""

import numpy as np
import torch
import torch.nn.functional as F

from spikeforge import golden

__all__ = ["ideal_counts", "calibrate_biases"]


def _tensor(array):
    return torch.as_tensor(np.asarray(array), dtype=torch.float64)


def ideal_counts(network, x):
    """Rate-ideal spike counts (spiking layers) and total currents (all others) over ``T`` steps.

    Parameters
    ----------
    network : spikeforge.golden.Network
    x : integer array (N, *input shape)

    Returns
    -------
    dict
        Layer name -> float64 array (N, *out_shape): spike counts for layers that output
        spikes, the total current over ``T`` steps for current and membrane outputs.
    """
    timesteps = network.timesteps
    values = {"input": np.asarray(x, dtype=np.float64)}
    for layer in network.layers:
        source = values[layer.inputs[0]]
        if layer.is_synaptic:
            weight = _tensor(layer.weight)
            bias = None if layer.bias is None else _tensor(layer.bias)
            src = _tensor(source)
            if layer.type == "linear":
                total = F.linear(src, weight, bias)
            else:
                conv = F.conv2d if layer.type == "conv2d" else F.conv3d
                total = conv(src, weight, bias, stride=layer.stride, padding=layer.padding)
            total = total.numpy()
            # A direct-encoded layer sees its current at every step; a later one sees counts.
            total = total * timesteps if layer.is_direct_encoded else total + (
                0 if layer.bias is None else (timesteps - 1) * _bias_shape(layer))
        elif layer.type == "maxpool2d":
            values[layer.name] = F.max_pool2d(_tensor(source), layer.kernel, layer.stride).numpy()
            continue
        elif layer.type == "flatten":
            values[layer.name] = source.reshape(source.shape[0], *layer.out_shape)
            continue
        elif layer.type == "avgpool2d":
            total = F.avg_pool2d(_tensor(source), layer.kernel, layer.stride,
                                 divisor_override=1).numpy()
        else:  # add
            total = sum(scale * values[name] for name, scale in zip(layer.inputs, layer.scales))
        if layer.output == "spikes":
            threshold = layer.neuron.threshold
            if layer.type == "avgpool2d":   # exact: floor((S + K // 2) / K)
                values[layer.name] = np.floor((total + (threshold >> 1)) / threshold)
            else:
                values[layer.name] = np.clip(np.floor(total / threshold + 0.5), 0, timesteps)
        else:
            values[layer.name] = total
    del values["input"]
    return values


def _bias_shape(layer):
    """The bias broadcast over a layer's output (channel axis first)."""
    bias = np.asarray(layer.bias, dtype=np.float64)
    return bias.reshape(-1, *([1] * (len(layer.out_shape) - 1)))


def _snn_counts(network, name, x, batch_size):
    counts = []
    for first in range(0, len(x), batch_size):
        trace = golden.run(network, x[first:first + batch_size], trace=True).traces[name]
        counts.append(trace.spikes.sum(axis=0, dtype=np.int64))
    return np.concatenate(counts).astype(np.float64)


def calibrate_biases(network, x, *, batch_size=100, log=None, reference=None, carry=None):
    """Correct the integer biases of ``network`` so its spike counts match the ideal ones.

    Parameters
    ----------
    network : spikeforge.golden.Network
    x : integer array (N, *input shape)
        Calibration inputs: training images, never validation or test images.
    batch_size : int
        Images per traced golden-model run (memory).
    log : callable, optional
        Receives one line per corrected layer.
    reference : spikeforge.golden.Network, optional
        The network whose rate-ideal counts are the target (default ``network``): the
        uncorrected conversion when ``network`` is an already corrected one (a second pass;
        the ideal counts of a corrected network include its corrections).
    carry : dict, optional
        Layer name -> the fraction of a bias step each channel's last correction rounded
        away; added to this pass's correction before it is rounded, and updated in place, so
        that corrections smaller than half a step add up over passes instead of vanishing.

    Returns
    -------
    network : spikeforge.golden.Network
        The corrected network (same manifest, new bias arrays).
    report : dict
        Layer name -> ``{"excess_spikes": mean excess before correction, "changed": number
        of channels whose bias moved, "bias_layer": the layer whose bias moved}``.
    """
    ideal = ideal_counts(network if reference is None else reference, x)
    manifest, arrays = golden.network_to_parts(network)
    arrays = dict(arrays)
    report = {}
    for layer in network.layers:
        if layer.output != "spikes" or layer.neuron is None or layer.type == "avgpool2d" \
                or (layer.is_synaptic and layer.is_direct_encoded):
            continue
        target = layer
        if layer.type == "add":
            target = next((network.layer(n) for n, s in zip(layer.inputs, layer.scales)
                           if network.layer(n).output == "current" and s == 1), None)
        if target is None or target.bias is None:
            continue
        current = golden.network_from_parts(manifest, arrays)
        excess = _snn_counts(current, layer.name, x, batch_size) - ideal[layer.name]
        per_channel = excess.mean(axis=(0, *range(2, excess.ndim)))
        threshold = layer.neuron.threshold
        wanted = -per_channel * threshold / network.timesteps
        if carry is not None:
            wanted = wanted + carry.get(layer.name, 0.0)
        delta = np.floor(wanted + 0.5).astype(np.int64)
        if carry is not None:
            carry[layer.name] = wanted - delta
        low, high = -(1 << (target.bias_bits - 1)), (1 << (target.bias_bits - 1)) - 1
        key = f"{target.name}.bias"
        arrays[key] = np.clip(arrays[key].astype(np.int64) + delta, low, high).astype(np.int32)
        report[layer.name] = {"excess_spikes": round(float(per_channel.mean()), 4),
                              "changed": int(np.count_nonzero(delta)),
                              "bias_layer": target.name}
        if log is not None:
            log(f"[calibrate-snn] {layer.name}: {per_channel.mean():+.3f} spikes/neuron over "
                f"the ideal; {np.count_nonzero(delta)} biases of {target.name} moved")
    return golden.network_from_parts(manifest, arrays), report
