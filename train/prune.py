"""Quantization-aware pruning (QAP) as in "Ps and Qs", on a :class:`~.qnet.QuantNet`.

Source: Hawks et al., "Ps and Qs: Quantization-Aware Pruning for Efficient Low Latency Neural
Network Inference", Front. Artif. Intell. 4:676564 (2021), and the authors' ``iter_prune.py``
(``ben-hawks/pytorch-jet-classify``). The pruning happens *during* quantization-aware training:
the network is first trained with quantized weights and quantized ReLUs (the MNIST recipe of
:mod:`spikeforge.train.mnist`), then, for rounds ``r = 1 .. R``:

1. **Prune** to the cumulative sparsity ``s0 + (S - s0) * r / R`` of all synaptic weights,
   ``s0`` being the fraction the quantizer already rounds to zero (like the paper's schedule,
   every round removes the same share of the *original* weights, counted from ``s0``).

   - ``mode="global"`` (the paper's global unstructured magnitude pruning): the weights of all
     prunable layers are ranked together and the smallest are removed. The score is the
     magnitude in integer weight steps, ``|W| / step`` (:mod:`spikeforge.train.quant`), i.e. the
     magnitude of the integer the bundle stores. The paper ranks raw float magnitudes, which is
     sound for its standardised inputs; here the first layer reads pixels ``0..255`` and its
     float weights are ten times smaller than the others', so a raw global ranking would
     delete it first.
   - ``mode="structured"``: whole output channels are removed (weights and bias), ranked by
     their mean ``|W| / step`` relative to the layer's average channel; a removed channel
     never fires (no current, ``V0 = theta >> 1`` below ``theta``), so the weights of every
     later layer that read it (through pools and flatten) are dead and are zeroed as well.
     This shrinks the work of the PE array (whole output channels and input slices vanish).
     The output layer keeps all its channels, and every layer keeps at least one.
   - ``mode="membrane"`` (SpQuant-SNN's spatial-channel pruning guided by the membrane,
     Hasssan et al. 2024, in rate form): whole output channels as in ``structured``, ranked
     by how often they fire instead of by their weights: a channel's mean quantized-ReLU
     output on ``prior_images`` training samples is its SNN spike rate (the clip-floor-shift
     activation is the IF neuron's spike count over ``T`` steps), i.e. how often its membrane
     reaches the threshold; channels whose membrane stays below threshold fire least and go
     first. Scores are relative to the layer's mean channel, as in ``structured``; a layer
     whose current feeds a residual ``add`` has no activation of its own and keeps the weight
     score.

   Already pruned weights stay pruned (masks only lose ones). By default the direct-encoded
   first layer is not pruned (``prune_input_layer=False``): its few weights (0.1 % of
   ``mnist-vgg``) are the only ones that see pixel values, and the sparsity counts every
   layer's weights, pruned or not.
2. **Retrain** the masked network with quantization-aware training for ``epochs_per_round``
   epochs (``final_epochs`` in the last round), keeping the epoch with the best *validation*
   accuracy of the quantized ANN (the pruned, untrained network is a candidate too).

   - ``variant="finetune"`` (the paper's FT): continue from the current weights.
   - ``variant="rewind"`` (lottery-ticket rewinding, the paper's LT): first reset the
     surviving weights, biases and clip values to the *rewind point*, the network at the start
     of quantization-aware training (float-trained weights with the batch norms folded and the
     clip values calibrated: "early" weights in the sense of Frankle et al.'s late rewinding;
     the paper rewinds to the initialisation).

Masks survive the quantizer by construction: every synaptic layer's ``weight`` (and ``bias``)
is re-parametrised as ``original * mask`` (``torch.nn.utils.parametrize``), so every read of
``module.weight``, including :meth:`QuantNet.quant_layers` in the training forward pass and in
the exporter, sees exact float zeros, which quantize to the integer 0 (``round_half_up(0) =
0``) and get no gradient. The golden model's op counts skip zero weights
(``golden.synapse.fanout``), so pruned weights cost no operations.

After each round :func:`round_report` measures the exported integers: the live output
channels of every layer, sparsity (fraction of zero integer weights), the quantized ANN's
validation and test accuracy, BOPs and neural efficiency / aIQ
(:mod:`spikeforge.train.prune_metrics`). The SNN accuracy (golden model) of
the final round is the bundle's ``snn_accuracy``.
:func:`spikeforge.train.prune_mnist.train_mnist_pruned` runs the whole recipe for an MNIST
preset and records the rounds in ``metadata["pruning"]``.
"""

import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from spikeforge import golden

from . import prune_metrics
from .convert import network_parts
from .fit import accuracy, best_state, train_epochs

__all__ = ["MODES", "RANKINGS", "VARIANTS", "PruneConfig", "attach_masks", "masks_of", "schedule",
           "global_masks", "structured_masks", "apply_masks", "round_report", "prune_qat",
           "report_lines"]

#: How each pruning mode ranks what it removes (recorded in the bundle's metadata).
RANKINGS = {
    "global": "|W| / step: weight magnitude in integer weight steps",
    "structured": "mean |W| / step of an output channel over the layer's mean channel",
    "membrane": "mean quantized-ReLU output (spike rate) of an output channel on training "
                "images over the layer's mean channel",
}
MODES = tuple(RANKINGS)
VARIANTS = ("finetune", "rewind")


@dataclass
class PruneConfig:
    """Settings of quantization-aware pruning (recorded in ``metadata["pruning"]``).

    ``sparsity`` is the fraction of all synaptic weights the masks remove by the last round,
    ``0 <= sparsity < 1`` (0: no pruning).
    """

    sparsity: float
    rounds: int = 4
    mode: str = "global"
    variant: str = "finetune"
    epochs_per_round: int = 2
    final_epochs: int = 4
    lr: float | None = None          # None: the recipe's quantization-aware learning rate
    prune_input_layer: bool = False
    metric_images: int = 1000        # test images for the efficiency / aIQ microstates
    prior_images: int = 512          # training images for the membrane prior (mode "membrane")

    def __post_init__(self):
        check_sparsity(self.sparsity)
        if self.mode not in MODES:
            raise ValueError(f"pruning mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.variant not in VARIANTS:
            raise ValueError(f"pruning variant {self.variant!r} is not one of "
                             f"{', '.join(VARIANTS)}")
        for field in ("rounds", "epochs_per_round", "final_epochs", "prior_images"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"pruning {field.replace('_', ' ')} must be a positive "
                                 f"integer, not {value!r}")


def check_sparsity(value):
    """Raise ``ValueError`` unless ``0 <= value < 1``; return it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"the pruning sparsity {value!r} is not a fraction in 0 <= S < 1")
    return float(value)


def schedule(config, start=0.0):
    """Cumulative mask sparsity after each round: ``s0 + (S - s0) * r / R`` for ``r = 1 .. R``.

    ``start`` (``s0``) is the fraction of weights that are already zero before round 1: at
    4 bits the quantizer alone rounds about a third of ``mnist-vgg``'s weights to 0, so the
    paper's ``S * r / R`` would spend its first rounds retraining a network they did not
    change (measured: a 0.2 round left the 0.36 zero fraction as it was).
    """
    start = min(float(start), config.sparsity)
    return [start + (config.sparsity - start) * r / config.rounds
            for r in range(1, config.rounds + 1)]


# ----------------------------------------------------------------------------- masks

class _Mask(nn.Module):
    """Parametrisation ``value * mask`` with the 0/1 mask as a buffer (saved in state dicts)."""

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, value):
        return value * self.mask


def attach_masks(net):
    """Re-parametrise every synaptic weight and bias of ``net`` as ``original * mask``.

    Masks start as ones (nothing pruned); calling it again changes nothing.
    """
    for module in net.synaptic.values():
        for field in ("weight", "bias"):
            if getattr(module, field) is not None and not parametrize.is_parametrized(
                    module, field):
                ones = torch.ones_like(getattr(module, field).detach())
                parametrize.register_parametrization(module, field, _Mask(ones))


def masks_of(net):
    """Layer name -> ``{"weight": mask, "bias": mask or None}`` (the live buffers)."""
    result = {}
    for name, module in net.synaptic.items():
        entry = {}
        for field in ("weight", "bias"):
            entry[field] = (module.parametrizations[field][0].mask
                            if parametrize.is_parametrized(module, field) else None)
        result[name] = entry
    return result


@torch.no_grad()
def apply_masks(net, masks):
    """Copy ``masks`` (layer -> {"weight": tensor, "bias": tensor or None}) into ``net``."""
    live = masks_of(net)
    for name, entry in masks.items():
        for field, mask in entry.items():
            if mask is not None:
                live[name][field].copy_(mask)


def _prunable(net, config, *, structured=False):
    first = {s["name"] for s in net.specs if s.get("sources") == ["input"]}
    names = [name for name in net.synaptic
             if config.prune_input_layer or name not in first]
    if structured:   # the output layer's channels are the classes
        names = [name for name in names if name != net.output_name]
    return names


def _total_weights(net):
    return sum(module.weight.numel() for module in net.synaptic.values())


@torch.no_grad()
def _scores(net):
    """Layer -> ``|W| / step``: weight magnitudes in integer weight steps."""
    quant = net.quant_layers()
    return {name: module.weight.detach().abs().double() / quant[name].step.double()
            for name, module in net.synaptic.items()}


@torch.no_grad()
def global_masks(net, target, config):
    """Masks that prune the ``target`` fraction of all weights by global magnitude.

    The candidates are the weights of the prunable layers, ranked by ``|W| / step``; weights
    pruned before rank first and so stay pruned. Returns layer -> {"weight", "bias"} masks.
    """
    live = masks_of(net)
    names = _prunable(net, config)
    count = round(target * _total_weights(net))
    already = sum(int((live[n]["weight"] == 0).sum()) for n in net.synaptic)
    count = max(count, already)
    scores = _scores(net)
    flat = torch.cat([torch.where(live[n]["weight"] == 0, -1.0, scores[n]).reshape(-1)
                      for n in names])
    if count > flat.numel():
        raise ValueError(f"cannot prune {target:.3f} of the weights: the prunable layers hold "
                         f"only {flat.numel()} of {_total_weights(net)}")
    order = torch.argsort(flat, stable=True)
    keep = torch.ones_like(flat)
    keep[order[:count]] = 0.0
    masks, first = {}, 0
    for name in names:
        size = live[name]["weight"].numel()
        weight = keep[first:first + size].reshape(live[name]["weight"].shape)
        masks[name] = {"weight": weight.to(live[name]["weight"].dtype), "bias": None}
        first += size
    return masks


def _consumers(net, name):
    """``(layer, index)`` pairs: the weight slices of later synaptic layers that read channel
    ``c`` of ``name`` through pools and flatten only; ``index(c)`` indexes their weight."""
    shapes = {s["name"]: s["out_shape"] for s in net.specs}
    found, stack = [], [(name, None)]
    while stack:
        current, pixels = stack.pop()
        for spec in net.specs:
            if current not in spec["sources"]:
                continue
            kind = spec["type"]
            if kind in ("maxpool2d", "avgpool2d") and pixels is None:
                stack.append((spec["name"], None))
            elif kind == "flatten" and pixels is None:
                shape = shapes[current]
                stack.append((spec["name"], int(torch.tensor(shape[1:]).prod())))
            elif kind in ("conv2d", "linear"):
                width = 1 if pixels is None else pixels
                found.append((spec["name"],
                              lambda c, w=width: (slice(None), slice(c * w, (c + 1) * w))))
            # an add mixes the channel with other inputs: it does not die, stop here
    return found


@torch.no_grad()
def _channel_weights(net):
    """Layer -> each output channel's mean ``|W| / step``."""
    return {name: score.reshape(score.shape[0], -1).mean(dim=1)
            for name, score in _scores(net).items()}


@torch.no_grad()
def _channel_rates(net, x, batch_size=128):
    """Layer -> each output channel's mean quantized-ReLU output on ``x`` (its spike rate
    times the clip value), for the synaptic layers with an activation of their own; the
    others (currents summed by an ``add``) keep :func:`_channel_weights`."""
    names = [s["name"] for s in net.specs if s["name"] in net.lams]
    sums = {}
    training = net.training
    net.train(False)
    for start in range(0, len(x), batch_size):
        _, hidden = net(x[start:start + batch_size], record=True)
        for name, h in zip(names, hidden):
            total = h.double().sum(dim=(0, *range(2, h.dim())))
            sums[name] = sums.get(name, 0) + total
    net.train(training)
    scores = _channel_weights(net)
    scores.update({name: total / len(x) for name, total in sums.items() if name in scores})
    return scores


@torch.no_grad()
def structured_masks(net, target, config, x_prior=None):
    """Masks that remove whole output channels until ``target`` of all weights are zero.

    Channels of the prunable layers (not the output layer) are ranked by their score divided
    by the layer's average over its channels: the mean ``|W| / step`` (``structured``), or,
    with ``config.mode == "membrane"``, the mean quantized-ReLU output on the samples
    ``x_prior`` (:func:`_channel_rates`). Each removal zeroes the channel's weights and bias
    and the weights that read it downstream (:func:`_consumers`). Every layer keeps at least
    one channel.
    """
    live = masks_of(net)
    masks = {n: {"weight": e["weight"].clone(),
                 "bias": None if e["bias"] is None else e["bias"].clone()}
             for n, e in live.items()}
    count = round(target * _total_weights(net))
    scores = _channel_rates(net, x_prior) if config.mode == "membrane" else \
        _channel_weights(net)
    ranking = []
    for position, name in enumerate(_prunable(net, config, structured=True)):
        # Relative to the layer's mean channel: a raw ranking empties whole layers whose
        # weights are small on average (measured: conv6 and conv7 of mnist-vgg down to one
        # channel at 80 %), while this removes the weakest channels of every layer.
        per_channel = scores[name] / scores[name].mean().clamp(min=1e-12)
        for channel, score in enumerate(per_channel.tolist()):
            if bool(masks[name]["weight"][channel].any()):
                ranking.append((score, position, channel, name))
    ranking.sort()
    consumers = {name: _consumers(net, name) for name in net.synaptic}

    def zeros():
        return sum(int((m["weight"] == 0).sum()) for m in masks.values())

    for _, _, channel, name in ranking:
        if zeros() >= count:
            break
        alive = masks[name]["weight"].reshape(masks[name]["weight"].shape[0], -1).any(dim=1)
        if int(alive.sum()) <= 1:
            continue
        masks[name]["weight"][channel] = 0.0
        if masks[name]["bias"] is not None:
            masks[name]["bias"][channel] = 0.0
        for consumer, index in consumers[name]:
            masks[consumer]["weight"][index(channel)] = 0.0
    return masks


# ----------------------------------------------------------------------------- reports

def _network(net, input_spec):
    """The golden network ``net`` exports to (no bias calibration)."""
    return golden.network_from_parts(*network_parts(net, name="pruning-probe",
                                                    input_spec=input_spec))


@torch.no_grad()
def _efficiency(net, x):
    net.eval()
    logits, hidden = net(x, record=True)
    layers = [prune_metrics.layer_efficiency(h.numpy()) for h in hidden]
    layers.append(prune_metrics.layer_efficiency(logits.numpy()))
    return prune_metrics.network_efficiency(layers)


def round_report(net, data, *, round_index, target):
    """Metrics of ``net`` now: a dict (see the module docstring); floats rounded for JSON."""
    network = _network(net, data["input_spec"])
    live = masks_of(net)
    masked = sum(int((entry["weight"] == 0).sum()) for entry in live.values())
    test_accuracy = accuracy(net, data["x_test"], data["y_test"])
    efficiency = _efficiency(net, data["x_test"][:data["metric_images"]])
    channels = {name: int(entry["weight"].reshape(entry["weight"].shape[0], -1).any(dim=1).sum())
                for name, entry in live.items()}
    return {"round": round_index, "target": round(target, 6), "channels": channels,
            "mask_sparsity": round(masked / _total_weights(net), 6),
            "sparsity": round(prune_metrics.weight_sparsity(network), 6),
            "val_accuracy": accuracy(net, data["x_val"], data["y_val"]),
            "test_accuracy": test_accuracy,
            "bops": round(prune_metrics.bops(network)["total"]),
            "efficiency": round(efficiency, 6),
            "aiq": round(prune_metrics.aiq(test_accuracy, efficiency), 6)}


def _round_line(row, dense_bops, rounds):
    text = (f"[prune] round {row['round']}/{rounds}: sparsity {row['sparsity']:.4f} (mask "
            f"{row['mask_sparsity']:.4f}), quantized ANN val {row['val_accuracy']:.4f} test "
            f"{row['test_accuracy']:.4f}, BOPs {row['bops'] / 1e6:.2f} M "
            f"({row['bops'] / dense_bops:.3f} of dense), efficiency {row['efficiency']:.4f}, "
            f"aIQ {row['aiq']:.4f}")
    if "snn_accuracy" in row:
        text += f", SNN (golden) {row['snn_accuracy']:.4f}"
    return text


def report_lines(pruning):
    """The per-round table of a ``metadata["pruning"]`` record, one line per round."""
    rounds = pruning["rounds"]
    dense = rounds[0]["bops"]
    return [_round_line(row, dense, len(rounds) - 1) for row in rounds]


# ----------------------------------------------------------------------------- the loop

@torch.no_grad()
def _rewind(net, state):
    """Load the parameters and buffers of ``state`` (an unmasked state dict), keeping masks."""
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "synaptic" and parts[-1] in ("weight", "bias"):
            module = net.synaptic[parts[1]]
            if parametrize.is_parametrized(module, parts[-1]):
                module.parametrizations[parts[-1]].original.copy_(value)
                continue
        target = net.get_parameter(key) if key.startswith("lams.") else net.get_buffer(key)
        target.copy_(value)


def prune_qat(net, data, config, *, log):
    """Run the pruning rounds on a quantization-aware trained ``net`` (in ``mode="quant"``).

    Parameters
    ----------
    net : QuantNet
    data : dict
        ``x_train, y_train, x_val, y_val, x_test, y_test`` (tensors), ``train_kwargs`` (the
        keyword arguments of :func:`spikeforge.train.fit.train_epochs` besides the data,
        epochs, lr and label), ``lr`` (default learning rate), ``input_spec`` (the bundle's
        input object), ``qat_start`` (state dict of the rewind point; for ``"rewind"``).
    config : PruneConfig
    log : callable

    Returns
    -------
    list of dict
        One report per round, round 0 being the unpruned network.
    """
    data = {**data, "metric_images": config.metric_images}
    attach_masks(net)
    started = time.perf_counter()
    rows = [round_report(net, data, round_index=0, target=0.0)]
    rows[0].update(epochs=0, selected_epoch=None, seconds=0.0)
    log(_round_line(rows[0], rows[0]["bops"], config.rounds))
    prior = data["x_train"][:config.prior_images]
    lr = config.lr or data["lr"]
    for index, target in enumerate(schedule(config, rows[0]["sparsity"]), start=1):
        masks = global_masks(net, target, config) if config.mode == "global" else \
            structured_masks(net, target, config, prior)
        apply_masks(net, masks)
        if config.variant == "rewind":
            _rewind(net, data["qat_start"])
        epochs = config.final_epochs if index == config.rounds else config.epochs_per_round
        best = {"val": accuracy(net, data["x_val"], data["y_val"]), "epoch": 0,
                "state": best_state(net)}

        def keep_best(epoch, val, best=best):
            if val >= best["val"]:
                best.update(val=val, epoch=epoch + 1, state=best_state(net))

        train_epochs(net, data["x_train"], data["y_train"], epochs=epochs, lr=lr,
                     label=f"prune {index}/{config.rounds}", on_epoch=keep_best,
                     **data["train_kwargs"])
        net.load_state_dict(best["state"])
        row = round_report(net, data, round_index=index, target=target)
        row.update(epochs=epochs, selected_epoch=best["epoch"],
                   seconds=round(time.perf_counter() - started, 1))
        rows.append(row)
        log(_round_line(row, rows[0]["bops"], config.rounds))
    return rows
