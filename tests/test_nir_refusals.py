"""Every refusal of ``spikeforge.nir`` not covered in ``test_nir.py``: one test each, the
message matched in full."""

import json
import sys

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from spikeforge.golden import network_from_parts, network_to_parts, read_bundle  # noqa: E402
from spikeforge.nir import NIRError, import_graph, read_graph, write_graph  # noqa: E402
from spikeforge.nir.common import GRAPH_KEY  # noqa: E402

from nir_graphs import pool_graph, tiny_graph  # noqa: E402
from test_nir import MODELS, zero_reset_conv3d_network  # noqa: E402


def refused(graph, **options):
    with pytest.raises(NIRError) as info:
        import_graph(graph, **options)
    return str(info.value)


def ones(*shape):
    return np.ones(shape, np.float32)


# --------------------------------------------------------------------------- foreign graphs

def test_output_reading_a_synapse_refused():
    graph = tiny_graph()
    del graph.nodes["out_v"]
    graph.edges[-2:] = [("fc2", "out")]
    assert refused(graph) == "node 'out': Output must read exactly one spikes or membrane value"


def test_conv1d_on_a_2d_map_refused():
    conv = nir.Conv1d(input_shape=4, weight=ones(2, 1, 3), stride=1, padding=1, dilation=1,
                      groups=1, bias=np.zeros(2, np.float32))
    graph = pool_graph(nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                     padding=np.array([0, 0])), nir.Threshold(0.5 * ones(2, 2, 2)))
    graph.nodes["conv"] = conv
    assert refused(graph) == ("node 'conv': Conv1d maps only on (C, L) maps: the input or "
                              "another Conv1d's")


def test_conv2d_on_a_lifted_map_refused():
    nodes = {
        "in": nir.Input(input_type={"input": np.array([1, 6])}),
        "c1": nir.Conv1d(input_shape=6, weight=ones(2, 1, 3), stride=1, padding=1, dilation=1,
                         groups=1, bias=np.zeros(2, np.float32)),
        "if1": nir.IF(r=ones(2, 6), v_threshold=ones(2, 6)),
        "pool": nir.SumPool2d(kernel_size=np.array([1, 2]), stride=np.array([1, 2]),
                              padding=np.array([0, 0])),
        "out": nir.Output(output_type={"output": np.array([2, 3])}),
    }
    names = list(nodes)
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), type_check=False)
    assert refused(graph) == ("node 'pool': SumPool2d reads a (C, L) map, which only Conv1d and "
                              "Flatten read")


def test_padded_pool_refused():
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                         padding=np.array([0, 0]))
    graph = pool_graph(pool, nir.Threshold(0.5 * ones(2, 2, 2)))
    pool.padding = np.array([1, 1])     # after type inference, which the padding would break
    assert refused(graph) == "node 'pool': SumPool2d pads its input; spikeforge pools do not pad"


def test_dilated_conv_refused():
    graph = pool_graph(nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                     padding=np.array([0, 0])), nir.Threshold(0.5 * ones(2, 2, 2)))
    graph.nodes["conv"].dilation = (2, 2)
    assert refused(graph) == "node 'conv': Conv2d with dilation or groups has no spikeforge layer"


def test_non_finite_weights_refused():
    weight = np.eye(2, 3, dtype=np.float32)
    weight[0, 0] = np.inf
    graph = tiny_graph(fc2=nir.Affine(weight=weight, bias=np.zeros(2, np.float32)))
    assert refused(graph) == "node 'fc2': the weights or the bias are not finite numbers"


def test_integer_weights_wider_than_weight_bits_refused():
    assert refused(tiny_graph(), weight_bits=3) == (
        "node 'fc1': the weights need more than 3 signed bits")


def test_bias_beyond_32_bits_refused():
    graph = tiny_graph(fc2=nir.Affine(weight=np.eye(2, 3, dtype=np.float32),
                                      bias=np.array([2.0 ** 40, 0], np.float32)))
    assert refused(graph) == "node 'fc2': the bias needs more than 32 signed bits"


def test_infinite_tau_with_finite_r_refused():
    lif = nir.LIF(tau=ones(3) * np.inf, r=ones(3), v_leak=0 * ones(3), v_threshold=ones(3))
    assert refused(tiny_graph(if1=lif)) == (
        "node 'if1': tau = inf, r = 1.0 is not a decay with unit input weight (r = tau / dt >= 1)")


def test_average_pool_into_the_output_refused():
    pool = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                         padding=np.array([0, 0]))
    assert refused(pool_graph(pool, nir.I(r=ones(2, 2, 2)))) == (
        "node 'pool': AvgPool2d is a mean; it folds exactly only into a directly following IF "
        "neuron (write SumPool2d)")


def _residual(scale_a=1.0, extra_reader=False, scale_into="add"):
    """in -> fc1 -> if1 -> {fc2 (current) -> sa, if1 -> sb} -> add(IF) -> fc3 -> I -> out."""
    nodes = {
        "in": nir.Input(input_type={"input": np.array([3])}),
        "fc1": nir.Affine(weight=np.eye(3, dtype=np.float32), bias=np.zeros(3, np.float32)),
        "if1": nir.IF(r=ones(3), v_threshold=ones(3)),
        "fc2": nir.Affine(weight=np.eye(3, dtype=np.float32), bias=np.zeros(3, np.float32)),
        "sa": nir.Scale(scale=scale_a * ones(3)),
        "sb": nir.Scale(scale=-2 * ones(3)),
        "add": nir.IF(r=ones(3), v_threshold=ones(3)),
        "fc3": nir.Affine(weight=np.eye(2, 3, dtype=np.float32), bias=np.zeros(2, np.float32)),
        "v": nir.I(r=ones(2)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("in", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("fc2", "sa"), ("if1", "sb"),
             ("sa", scale_into), ("sb", "add"), ("add", "fc3"), ("fc3", "v"), ("v", "out")]
    if extra_reader:
        nodes["if2"] = nir.IF(r=ones(3), v_threshold=ones(3))
        edges.append(("fc2", "if2"))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_residual_add_imports():
    network, _ = import_graph(_residual())
    add = next(layer for layer in network.layers if layer.type == "add")
    assert (add.type, add.scales) == ("add", (1, -2))
    assert network.layer(add.inputs[0]).output == "current"


def test_non_integer_scale_refused():
    assert refused(_residual(scale_a=0.5)) == "node 'sa': the scale 0.5 is not a 16-bit integer"


def test_scale_not_into_a_neuron_refused():
    assert refused(_residual(scale_into="fc3")) == (
        "node 'sa': Scale maps only as an input of a residual add (into a neuron)")


def test_current_with_a_second_reader_refused():
    assert refused(_residual(extra_reader=True)) == (
        "node 'fc2': a current feeding a residual add must have integer weights and no other "
        "reader")


def test_neuron_reading_spikes_directly_refused():
    graph = tiny_graph(fc2=nir.IF(r=ones(3), v_threshold=ones(3)))
    assert refused(graph) == ("node 'fc2': a neuron reading spikes or a current directly (not "
                              "through a synaptic node) must be a residual add of two or more "
                              "inputs")


def test_spiking_output_of_a_feature_map_refused():
    nodes = {
        "in": nir.Input(input_type={"input": np.array([1, 4, 4])}),
        "conv": nir.Conv2d(input_shape=(4, 4), weight=ones(2, 1, 3, 3), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.zeros(2, np.float32)),
        "if1": nir.IF(r=ones(2, 4, 4), v_threshold=ones(2, 4, 4)),
        "out": nir.Output(output_type={"output": np.array([2, 4, 4])}),
    }
    names = list(nodes)
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])))
    assert refused(graph) == ("node 'if1': the graph's output fires spikes of a multi-axis "
                              "feature map; flatten it first")


def test_membrane_wider_than_32_bits_refused():
    big = nir.Affine(weight=np.full((3, 4), 127, np.float32),
                     bias=np.full(3, 2.0 ** 30, np.float32))
    assert refused(tiny_graph(fc1=big), timesteps=4) == (
        "the graph's membranes can exceed 32 bits in 4 timesteps, where the contract would "
        "saturate them")


def test_invalid_network_refused():
    # Valid NIR, but the first layer of a bundle must read the input through weights.
    graph = tiny_graph(fc1=nir.Affine(weight=np.eye(3, 4, dtype=np.float32),
                                      bias=np.zeros(3, np.float32)))
    graph.nodes["out_v"] = nir.I(r=ones(2))
    network, _ = import_graph(graph)
    assert network.layers[0].type == "linear"   # the control: the same graph, valid, imports
    assert refused(graph, timesteps=2000) == (
        "the graph gives an invalid spikeforge network: timesteps is 2000, outside the allowed "
        "range 1..1024")


def test_not_a_nir_file_refused(tmp_path):
    import h5py

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    with pytest.raises(NIRError) as info:
        read_graph(path)
    assert str(info.value) == (f"{path} is not a valid NIR 1.0 graph (an entry NIR needs is "
                               f"missing)")


# --------------------------------------------------------------------------- spikeforge graphs

@pytest.fixture
def digits_graph(tmp_path):
    path = tmp_path / "digits.nir"
    write_graph(read_bundle(MODELS[0]), path)
    return nir.read(path)


def _header(graph):
    return json.loads(graph.metadata[GRAPH_KEY])


def test_spikeforge_graph_with_another_dt_refused(digits_graph):
    digits_graph.metadata["dt"] = 1e-4
    assert refused(digits_graph) == "the graph's dt is 0.0001; spikeforge writes dt = 1.0"


def test_spikeforge_graph_without_layer_list_refused(digits_graph):
    header = _header(digits_graph)
    del header["layers"]
    digits_graph.metadata[GRAPH_KEY] = json.dumps(header)
    assert refused(digits_graph) == "the spikeforge metadata of the graph lists no layers"


def test_spikeforge_graph_missing_a_layer_node_refused(digits_graph):
    del digits_graph.nodes["fc"].metadata["spikeforge_layer"]
    assert refused(digits_graph) == ("layer 'fc' has no node with spikeforge metadata in the "
                                     "graph")


def test_spikeforge_graph_with_broken_json_refused(digits_graph):
    digits_graph.metadata[GRAPH_KEY] = "{not json"
    message = refused(digits_graph)
    assert message.startswith("the spikeforge metadata of the graph is not valid JSON (")


def test_spikeforge_graph_with_fractional_weight_refused(digits_graph):
    digits_graph.nodes["fc"].weight[0, 0] += 0.5
    assert refused(digits_graph) == ("node 'fc'.weight holds non-integer values, which "
                                     "spikeforge never writes")


def test_spikeforge_graph_with_an_invalid_header_refused(digits_graph):
    header = _header(digits_graph)
    header["timesteps"] = 0
    digits_graph.metadata[GRAPH_KEY] = json.dumps(header)
    assert refused(digits_graph) == ("the graph gives an invalid spikeforge network: timesteps "
                                     "is 0, outside the allowed range 1..1024")


def test_spikeforge_graph_with_changed_edges_refused(digits_graph):
    digits_graph.edges.append(("input", "fc"))
    assert refused(digits_graph) == ("the graph's edges do not match its spikeforge metadata; the "
                                     "graph was changed after spikeforge wrote it")


# --------------------------------------------------------------------------- export

def test_export_of_an_inner_flatten_after_conv3d_refused(tmp_path):
    manifest, arrays = network_to_parts(zero_reset_conv3d_network())
    layers = manifest["layers"]
    fold = next(entry for entry in layers if entry["name"] == "fold")
    # Flatten depth, height and width of each channel: (4, 2, 4, 4) -> (4, 32).
    fold.update(start_dim=1, end_dim=3, out_shape=[4, 32])
    index = layers.index(fold)
    layers[index + 1:] = [
        {"name": "flat", "type": "flatten", "inputs": ["fold"], "output": "spikes",
         "start_dim": 0, "end_dim": 1, "out_shape": [128]},
        {"name": "fc", "type": "linear", "inputs": ["flat"], "out_features": 3,
         "weight_bits": 4, "output": "membrane", "out_shape": [3], "neuron": {}},
    ]
    arrays = {k: v for k, v in arrays.items() if not k.startswith(("c3.", "fc."))}
    arrays["fc.weight"] = np.ones((3, 128), np.int8)
    with pytest.raises(NIRError) as info:
        write_graph(network_from_parts(manifest, arrays), tmp_path / "g.nir")
    assert str(info.value) == ("layer 'fold' flattens axes 1..3 of a 4D feature map, which has "
                               "no NIR form once conv3d channels are folded with depth")
    assert list(tmp_path.iterdir()) == []


def test_without_the_nir_package_refused(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nir", None)     # import nir now raises ImportError
    with pytest.raises(NIRError) as info:
        write_graph(read_bundle(MODELS[0]), tmp_path / "g.nir")
    assert str(info.value) == ("NIR support needs the nir package, which is not installed; "
                               "install it with pip install 'spikeforge[nir]'")
