"""A test-only NIR executor written from NIR 1.0.8's documented node equations.

It must stay independent of the golden model (no ``spikeforge`` import at all): it is the
"other NIR consumer" the export is checked against. Time is forward Euler with step ``dt``
(``docs/nir.md``: spikeforge states ``dt = 1``): per step, every node reads the sum of its
predecessors' outputs of the same step (NIR fan-in), in topological order, so the graph must
be acyclic. Values are float64, exact for the integers of these tests.

Node equations (the classes' docstrings in ``nir/ir/*.py``):
``Affine y = W x + b``; ``Linear y = W x``; ``Scale y = s * x``; ``Conv1d`` / ``Conv2d`` PyTorch's
cross-correlation with zero padding; ``SumPool2d`` window sum; ``Flatten`` per-sample axes;
``Threshold z = x > t``; ``I dv/dt = r I``; ``IF`` as ``I`` plus ``z = v > v_threshold``,
``v = v_reset`` where ``z``; ``LI tau dv/dt = v_leak - v + r I``; ``LIF`` as ``LI`` plus the
IF's fire and reset.
"""

import numpy as np

__all__ = ["execute"]


def _conv2d(x, node):
    weight = np.asarray(node.weight, dtype=np.float64)
    stride = np.broadcast_to(np.asarray(node.stride), 2)
    padding = np.broadcast_to(np.asarray(node.padding), 2)
    assert np.all(np.asarray(node.dilation) == 1) and int(node.groups) == 1
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    padded = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))
    out_h = (h + 2 * padding[0] - kh) // stride[0] + 1
    out_w = (w + 2 * padding[1] - kw) // stride[1] + 1
    out = np.zeros((n, c_out, out_h, out_w))
    for ky in range(kh):
        for kx in range(kw):
            window = padded[:, :, ky:ky + stride[0] * out_h:stride[0],
                            kx:kx + stride[1] * out_w:stride[1]]
            out += np.einsum("oc,nchw->nohw", weight[:, :, ky, kx], window)
    return out + np.asarray(node.bias, dtype=np.float64)[None, :, None, None]


def _conv1d(x, node):
    weight = np.asarray(node.weight, dtype=np.float64)
    stride, padding = int(np.asarray(node.stride).flat[0]), int(np.asarray(node.padding).flat[0])
    assert np.all(np.asarray(node.dilation) == 1) and int(node.groups) == 1
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    length = (x.shape[2] + 2 * padding - weight.shape[2]) // stride + 1
    out = np.zeros((x.shape[0], weight.shape[0], length))
    for k in range(weight.shape[2]):
        window = padded[:, :, k:k + stride * length:stride]
        out += np.einsum("oc,ncl->nol", weight[:, :, k], window)
    return out + np.asarray(node.bias, dtype=np.float64)[None, :, None]


def _sumpool2d(x, node):
    kh, kw = (int(v) for v in np.asarray(node.kernel_size))
    sh, sw = (int(v) for v in np.asarray(node.stride))
    assert np.all(np.asarray(node.padding) == 0)
    out_h = (x.shape[2] - kh) // sh + 1
    out_w = (x.shape[3] - kw) // sw + 1
    out = np.zeros((*x.shape[:2], out_h, out_w))
    for ky in range(kh):
        for kx in range(kw):
            out += x[:, :, ky:ky + sh * out_h:sh, kx:kx + sw * out_w:sw]
    return out


def _flatten(x, node):
    rank = x.ndim - 1                         # NIR's axes exclude the batch axis
    start, end = int(node.start_dim) % rank, int(node.end_dim) % rank
    shape = x.shape[1:]
    return x.reshape(x.shape[0], *shape[:start], -1, *shape[end + 1:])


def _order(graph):
    pending = {name: 0 for name in graph.nodes}
    for _, target in graph.edges:
        pending[target] += 1
    ready = [name for name, count in pending.items() if count == 0]
    order = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for source, target in graph.edges:
            if source == name:
                pending[target] -= 1
                if pending[target] == 0:
                    ready.append(target)
    assert len(order) == len(graph.nodes), "the executor runs acyclic graphs only"
    return order


def execute(graph, x, steps, dt=1.0):
    """Run ``graph`` for ``steps`` steps on the batch ``x`` (fed to the one ``Input`` node
    every step). Returns ``{node: (steps, N, ...) outputs}`` and, under the key
    ``("v", node)``, each neuron node's membrane after each step."""
    order = _order(graph)
    sources = {name: [s for s, t in graph.edges if t == name] for name in graph.nodes}
    state, record = {}, {}
    for _ in range(steps):
        out = {}
        for name in order:
            node = graph.nodes[name]
            kind = type(node).__name__
            if kind == "Input":
                out[name] = np.asarray(x, dtype=np.float64)
                continue
            i = sum(out[s] for s in sources[name])
            p = {f: np.asarray(getattr(node, f), dtype=np.float64)
                 for f in ("r", "tau", "v_leak", "v_threshold", "v_reset") if hasattr(node, f)}
            if kind == "Affine":
                y = i @ np.asarray(node.weight, np.float64).T + np.asarray(node.bias, np.float64)
            elif kind == "Linear":
                y = i @ np.asarray(node.weight, np.float64).T
            elif kind == "Scale":
                y = i * np.asarray(node.scale, np.float64)
            elif kind == "Conv1d":
                y = _conv1d(i, node)
            elif kind == "Conv2d":
                y = _conv2d(i, node)
            elif kind == "SumPool2d":
                y = _sumpool2d(i, node)
            elif kind == "Flatten":
                y = _flatten(i, node)
            elif kind == "Threshold":
                y = (i > np.asarray(node.threshold, np.float64)).astype(np.float64)
            elif kind == "Output":
                y = i
            elif kind in ("I", "IF", "LI", "LIF"):
                v = state.get(name, np.zeros_like(i))
                if kind in ("I", "IF"):
                    v = v + dt * p["r"] * i
                else:
                    v = v + dt / p["tau"] * (p["v_leak"] - v + p["r"] * i)
                if kind in ("IF", "LIF"):
                    y = (v > p["v_threshold"]).astype(np.float64)
                    v = np.where(y > 0, p["v_reset"], v)
                else:
                    y = v
                state[name] = v
                record.setdefault(("v", name), []).append(v)
            else:
                raise NotImplementedError(f"the executor has no {kind} node")
            out[name] = y
            record.setdefault(name, []).append(y)
    return {key: np.stack(values) for key, values in record.items()}
