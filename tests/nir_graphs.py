"""Small hand-built NIR graphs for the import tests (integer parameters throughout)."""

import numpy as np
import nir

__all__ = ["tiny_graph", "pool_graph"]


def tiny_graph(**changes):
    """Input(4) -> Affine -> IF -> Affine -> I -> Output, integer parameters; ``changes``
    replaces nodes by name."""
    ones = np.ones(3, np.float32)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([4])}),
        "fc1": nir.Affine(weight=np.arange(12, dtype=np.float32).reshape(3, 4) - 6,
                          bias=np.array([1, 0, -1], np.float32)),
        "if1": nir.IF(r=ones, v_threshold=ones * 4, v_reset=ones * 0),
        "fc2": nir.Affine(weight=np.eye(2, 3, dtype=np.float32), bias=np.zeros(2, np.float32)),
        "out_v": nir.I(r=np.ones(2, np.float32)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    nodes.update(changes)
    edges = [("in", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("fc2", "out_v"), ("out_v", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def pool_graph(pool, after, padding=1):
    """Input(1,4,4) -> Conv2d -> IF -> ``pool`` -> ``after`` -> Flatten -> Affine -> I."""
    shape = (2, 4, 4)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([1, 4, 4])}),
        "conv": nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3), np.float32),
                           stride=1, padding=padding, dilation=1, groups=1,
                           bias=np.zeros(2, np.float32)),
        "if1": nir.IF(r=np.ones(shape, np.float32), v_threshold=np.full(shape, 3, np.float32)),
        "pool": pool, "after": after,
        "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=np.ones((3, 8), np.float32), bias=np.zeros(3, np.float32)),
        "v": nir.I(r=np.ones(3, np.float32)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    names = ["in", "conv", "if1", "pool", "after", "flat", "fc", "v", "out"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), type_check=True)
