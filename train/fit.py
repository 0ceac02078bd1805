"""Training-loop pieces shared by the presets: inputs, augmentation, epochs, evaluation.

Everything random draws from generators seeded by the caller, so a run is deterministic for a
given seed on one machine and thread count (PyTorch's CPU kernels are deterministic there).
"""

import time

import numpy as np
import torch
import torch.nn.functional as F

from spikeforge import golden

__all__ = ["ann_inputs", "shift_batch", "accuracy", "train_epochs", "snn_accuracy",
           "best_state"]


def ann_inputs(raw, spec):
    """Real-valued ANN input ``quantize_input(raw) * scale`` (float32) and the integer pixels.

    The ANN thus sees exactly the values the SNN's direct-encoded first layer sees.
    """
    pixels = golden.quantize_input(raw, spec)
    return torch.as_tensor(pixels * spec.scale, dtype=torch.float32), pixels


def shift_batch(x, max_shift, generator):
    """Translate every image of ``x`` (N, C, H, W) by its own random offset in
    ``-max_shift .. max_shift`` pixels per axis, filling with zeros.

    The result holds the same pixel values moved around (plus zeros), so quantized inputs stay
    quantized.
    """
    if max_shift <= 0:
        return x
    n, _, height, width = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
    rows = offsets[0][:, None] + torch.arange(height)            # (N, H)
    cols = offsets[1][:, None] + torch.arange(width)             # (N, W)
    index = torch.arange(n)[:, None, None]
    moved = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]
    return moved.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def accuracy(net, x, y, batch_size=1000):
    """Fraction of ``x`` that ``net`` (in eval mode, its current ``mode``) classifies as ``y``."""
    net.eval()
    correct = 0
    for first in range(0, len(x), batch_size):
        logits = net(x[first:first + batch_size])
        correct += int((logits.argmax(dim=1) == y[first:first + batch_size]).sum())
    return correct / max(1, len(y))


def best_state(net):
    """A detached copy of ``net``'s parameters and buffers (for keeping the best epoch)."""
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def run_epoch(net, x, y, *, optimizer, schedule, batch_size, generator, augment):
    """One epoch of cross-entropy training in a ``generator``-seeded order; stepping
    ``schedule`` after every batch. ``augment(batch)`` transforms each batch of inputs.

    Returns ``(mean loss, training accuracy)``, measured on the batches as they were trained.
    """
    net.train()
    total, correct = 0.0, 0
    order = torch.randperm(len(x), generator=generator)
    for first in range(0, len(x), batch_size):
        batch = order[first:first + batch_size]
        logits = net(augment(x[batch]))
        loss = F.cross_entropy(logits, y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        total += float(loss.detach()) * len(batch)
        correct += int((logits.detach().argmax(dim=1) == y[batch]).sum())
    return total / len(x), correct / len(x)


def train_epochs(net, x, y, *, epochs, lr, batch_size, weight_decay, generator, label, log,
                 x_val, y_val, max_shift=0, on_epoch=None):
    """Adam with cosine learning-rate decay over ``epochs``; logs one line per epoch.

    Parameters
    ----------
    net : torch.nn.Module
        Trained in its current ``mode``.
    x, y : torch.Tensor
        Training inputs and labels.
    epochs, batch_size : int
    lr, weight_decay : float
    generator : torch.Generator
        Seeded; drives the shuffling and the shifts.
    label : str
        Prefix of the log lines, e.g. ``"float"``.
    log : callable
        Called with one line per epoch: loss, running training accuracy (measured on the
        batches as they were trained, augmented), validation accuracy and time.
    x_val, y_val : torch.Tensor
        Held-out validation split (never the test set).
    max_shift : int
        Random translation of every training image by up to this many pixels.
    on_epoch : callable, optional
        ``on_epoch(epoch, val_accuracy)`` after each epoch (for model selection).
    """
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps = max(1, epochs * ((len(x) + batch_size - 1) // batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    for epoch in range(epochs):
        start = time.perf_counter()
        loss, train = run_epoch(net, x, y, optimizer=optimizer, schedule=schedule,
                                batch_size=batch_size, generator=generator,
                                augment=lambda batch: shift_batch(batch, max_shift, generator))
        val = accuracy(net, x_val, y_val)
        log(f"[{label}] epoch {epoch + 1}/{epochs}  loss {loss:.4f}  "
            f"train {train:.4f}  val {val:.4f}  ({time.perf_counter() - start:.1f} s)")
        if on_epoch is not None:
            on_epoch(epoch, val)


def snn_accuracy(network, raw, labels, batch_size=500):
    """Accuracy of the golden model on raw samples (quantized with the network's input spec)."""
    from spikeforge.data.evaluate import evaluate

    if len(labels) == 0:
        return 0.0
    result = evaluate(network, raw, np.asarray(labels), batch_size=batch_size)
    return result.accuracy
