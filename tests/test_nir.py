"""NIR in and out (``spikeforge.nir``): the shipped bundles' round trip, an independent NIR
executor on a zero-reset export, and hand-built graphs for every refusal."""

from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from spikeforge.golden import network_from_parts, network_to_parts, read_bundle, run  # noqa: E402
from spikeforge.nir import (  # noqa: E402
    NIRError, export_graph, import_graph, read_graph, write_graph,
)

from nir_executor import execute  # noqa: E402
from nir_graphs import pool_graph, tiny_graph  # noqa: E402

MODELS = sorted((Path(__file__).resolve().parents[1] / "spikeforge" / "models").glob("*.sfb"))


def assert_same_network(a, b):
    """Field by field through the bundle's canonical parts: manifest and typed arrays."""
    manifest_a, arrays_a = network_to_parts(a)
    manifest_b, arrays_b = network_to_parts(b)
    assert manifest_a == manifest_b
    assert sorted(arrays_a) == sorted(arrays_b)
    for key, array in arrays_a.items():
        assert arrays_b[key].dtype == array.dtype and np.array_equal(arrays_b[key], array), key


# --------------------------------------------------------------------------- shipped bundles

def test_the_shipped_bundles():
    assert [path.stem for path in MODELS] == [
        "digits_snn", "indian_pines_3d", "indian_pines_3d_m4", "indian_pines_hybrid",
        "mnist_resnet", "mnist_vgg", "mnist_vgg_m4", "mnist_vgg_pruned", "mnist_vgg_w2_m3"]


@pytest.mark.parametrize("bundle", MODELS, ids=lambda p: p.stem)
def test_shipped_bundle_round_trip_is_identical(tmp_path, bundle):
    network = read_bundle(bundle)
    path = tmp_path / "graph.nir"
    write_graph(network, path)
    again = read_graph(path)
    assert_same_network(network, again)
    assert again.name == network.name and again.timesteps == network.timesteps


def test_export_uses_standard_nodes_and_the_stated_convention(tmp_path):
    network = read_bundle(next(p for p in MODELS if p.stem == "mnist_resnet"))
    path = tmp_path / "resnet.nir"
    write_graph(network, path)
    graph = nir.read(path)
    assert graph.metadata["dt"] == 1.0
    stem = network.layer("stem")
    neuron = graph.nodes["stem.neuron"]
    assert type(neuron) is nir.IF
    assert np.all(neuron.r == 1) and np.all(neuron.v_reset == 0)
    assert np.all(neuron.v_threshold == stem.neuron.threshold - 0.5)
    assert type(graph.nodes["avgpool"]) is nir.SumPool2d
    assert not any(type(node) is nir.AvgPool2d for node in graph.nodes.values())
    assert type(graph.nodes["fc.neuron"]) is nir.I
    add = network.layer("s1b1_add")
    scales = [graph.nodes[f"s1b1_add.scale{i}"] for i in range(2)]
    assert [int(s.scale.flat[0]) for s in scales] == list(add.scales)
    into_add = sorted(src for src, dst in graph.edges if dst == "s1b1_add.neuron")
    assert into_add == ["s1b1_add.scale0", "s1b1_add.scale1"]
    assert list(np.asarray(graph.nodes["stem"].padding)) == list(stem.padding)


def test_export_report_names_what_nir_cannot_express():
    _, report = export_graph(read_bundle(next(p for p in MODELS if p.stem == "indian_pines_3d")))
    notes = {entry["node"]: entry["notes"] for entry in report["nodes"]}
    assert not report["exact"]
    assert "subtract reset has no NIR form; other NIR consumers will reset to zero" in \
        notes["c1.neuron"]
    assert any("(V * 254) >> 8" in note for note in notes["c2.neuron"])
    assert any("v_init 'half'" in note for note in notes["c1.neuron"])
    assert notes["c1"] == []          # the conv3d itself is exact (depth-unrolled Conv2d)


def test_strict_export_of_a_subtract_reset_bundle_refused(tmp_path):
    path = tmp_path / "digits.nir"
    with pytest.raises(NIRError) as info:
        write_graph(read_bundle(MODELS[0]), path, strict=True)
    assert str(info.value) == ("conv1.neuron: subtract reset has no NIR form; other NIR "
                               "consumers will reset to zero")
    assert list(tmp_path.iterdir()) == []


def test_edited_spikeforge_graph_refused(tmp_path):
    path = tmp_path / "digits.nir"
    write_graph(read_bundle(MODELS[0]), path)
    graph = nir.read(path)
    # The metadata states the threshold; the node now says another one.
    graph.nodes["conv2.neuron"].v_threshold += 1
    with pytest.raises(NIRError) as info:
        import_graph(graph)
    assert str(info.value) == ("node 'conv2.neuron' does not match the graph's spikeforge "
                               "metadata; the graph was changed after spikeforge wrote it")


def test_options_on_a_spikeforge_graph_refused(tmp_path):
    path = tmp_path / "digits.nir"
    write_graph(read_bundle(MODELS[0]), path)
    with pytest.raises(NIRError) as info:
        read_graph(path, input_bits=4)
    assert str(info.value) == ("the graph was written by spikeforge, whose metadata fixes "
                               "input_bits; leave the option out")


# --------------------------------------------------------------------------- independent executor

def zero_reset_network(seed=0):
    """conv (direct input) -> maxpool -> conv spikes + conv current -> add -> avgpool ->
    flatten -> linear membrane; zero reset, no leak, membranes too wide to saturate."""
    rng = np.random.default_rng(seed)
    zero = {"reset": "zero"}
    layers = [
        {"name": "c1", "type": "conv2d", "out_channels": 4, "kernel": [3, 3], "stride": [1, 1],
         "padding": [1, 1], "weight_bits": 4, "bias_bits": 8, "output": "spikes",
         "out_shape": [4, 8, 8], "neuron": {"threshold": 60, **zero}},
        {"name": "mp", "type": "maxpool2d", "kernel": [2, 2], "output": "spikes",
         "out_shape": [4, 4, 4]},
        {"name": "c2", "type": "conv2d", "out_channels": 4, "kernel": [3, 3], "stride": [1, 1],
         "padding": [1, 1], "weight_bits": 4, "output": "spikes", "out_shape": [4, 4, 4],
         "neuron": {"threshold": 3, **zero}},
        {"name": "c3", "type": "conv2d", "inputs": ["mp"], "out_channels": 4, "kernel": [1, 1],
         "stride": [1, 1], "padding": [0, 0], "weight_bits": 3, "output": "current",
         "out_shape": [4, 4, 4]},
        {"name": "res", "type": "add", "inputs": ["c2", "c3"], "scales": [2, -1],
         "output": "spikes", "out_shape": [4, 4, 4], "neuron": {"threshold": 2, **zero}},
        {"name": "ap", "type": "avgpool2d", "kernel": [2, 2], "output": "spikes",
         "out_shape": [4, 2, 2], "neuron": {"threshold": 2, **zero}},
        {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [16]},
        {"name": "fc", "type": "linear", "out_features": 5, "weight_bits": 4, "bias_bits": 4,
         "output": "membrane", "out_shape": [5], "neuron": {}},
    ]
    arrays = {"c1.weight": rng.integers(-8, 8, (4, 1, 3, 3), dtype=np.int8),
              "c1.bias": rng.integers(-20, 20, 4).astype(np.int32),
              "c2.weight": rng.integers(-4, 8, (4, 4, 3, 3), dtype=np.int8),
              "c3.weight": rng.integers(-4, 4, (4, 4, 1, 1), dtype=np.int8),
              "fc.weight": rng.integers(-8, 8, (5, 16), dtype=np.int8),
              "fc.bias": rng.integers(-8, 8, 5).astype(np.int32)}
    manifest = {"format": "spikeforge-bundle", "format_version": 1, "name": "zero_reset",
                "timesteps": 6, "membrane_bits": 24,
                "input": {"shape": [1, 8, 8], "bits": 4, "raw_min": 0.0, "raw_max": 1.0},
                "layers": layers}
    return network_from_parts(manifest, arrays)


def test_independent_executor_reproduces_the_golden_model(tmp_path):
    network = zero_reset_network()
    path = tmp_path / "zero.nir"
    report = write_graph(network, path, strict=True)
    assert report["exact"]
    graph = nir.read(path)
    x = np.random.default_rng(1).integers(0, 16, (12, 1, 8, 8))
    golden = run(network, x, trace=True)
    outputs = execute(graph, x, network.timesteps)
    spiking = {"c1": "c1.neuron", "mp": "mp.or", "c2": "c2.neuron", "res": "res.neuron",
               "ap": "ap.neuron"}
    for layer, node in spiking.items():
        expected = golden.traces[layer].spikes
        assert expected.sum() > 0, f"{layer} never fires: the comparison would be vacuous"
        np.testing.assert_array_equal(outputs[node], expected, err_msg=layer)
    np.testing.assert_array_equal(outputs[("v", "fc.neuron")][-1], golden.output_membrane)
    np.testing.assert_array_equal(outputs[("v", "fc.neuron")], golden.traces["fc"].membrane)


def _changed(network, **changes):
    """``network`` with manifest fields replaced: ``membrane_bits=12``, ``c1={"neuron": ...}``."""
    manifest, arrays = network_to_parts(network)
    for key, value in changes.items():
        if key in manifest:
            manifest[key] = value
        else:
            next(entry for entry in manifest["layers"] if entry["name"] == key).update(value)
    return network_from_parts(manifest, arrays)


def test_reported_subtract_reset_really_differs_in_nir(tmp_path):
    network = _changed(zero_reset_network(), c1={"neuron": {"threshold": 60,
                                                            "reset": "subtract"}})
    path = tmp_path / "subtract.nir"
    report = write_graph(network, path)
    notes = {entry["node"]: entry["notes"] for entry in report["nodes"]}
    assert notes["c1.neuron"] == ["subtract reset has no NIR form; other NIR consumers will "
                                  "reset to zero"]
    x = np.random.default_rng(1).integers(0, 16, (12, 1, 8, 8))
    outputs = execute(nir.read(path), x, network.timesteps)
    assert not np.array_equal(outputs["c1.neuron"], run(network, x, trace=True).traces["c1"].spikes)


def test_reported_saturation_bound():
    network = _changed(zero_reset_network(), membrane_bits=12)
    c1 = network.layer("c1")
    # Largest |I| of the direct-encoded layer on 4-bit pixels, then T steps of it.
    largest = int(np.abs(c1.weight.astype(np.int64)).sum(axis=(1, 2, 3)).max()) * 15 \
        + int(np.abs(c1.bias).max())
    _, report = export_graph(network)
    notes = {entry["node"]: entry["notes"] for entry in report["nodes"]}
    assert notes["c1.neuron"] == [f"the 12-bit membrane can saturate (|V| up to {6 * largest} "
                                  f"in 6 steps); NIR membranes do not saturate"]


def zero_reset_conv3d_network(seed=0):
    """conv3d (depth stride 2, padding 1 on every axis) -> conv3d -> fold to 2D -> conv2d ->
    flatten -> linear membrane: the depth-unrolled Conv2d export on every corner."""
    rng = np.random.default_rng(seed)
    zero = {"reset": "zero"}
    layers = [
        {"name": "c1", "type": "conv3d", "out_channels": 3, "kernel": [3, 3, 3],
         "stride": [2, 1, 1], "padding": [1, 1, 1], "weight_bits": 4, "bias_bits": 6,
         "output": "spikes", "out_shape": [3, 3, 6, 6], "neuron": {"threshold": 40, **zero}},
        {"name": "c2", "type": "conv3d", "out_channels": 4, "kernel": [2, 3, 3],
         "stride": [1, 1, 1], "padding": [0, 0, 0], "weight_bits": 4, "output": "spikes",
         "out_shape": [4, 2, 4, 4], "neuron": {"threshold": 4, **zero}},
        {"name": "fold", "type": "flatten", "start_dim": 0, "end_dim": 1, "output": "spikes",
         "out_shape": [8, 4, 4]},
        {"name": "c3", "type": "conv2d", "out_channels": 2, "kernel": [3, 3], "stride": [1, 1],
         "padding": [1, 1], "weight_bits": 4, "output": "spikes", "out_shape": [2, 4, 4],
         "neuron": {"threshold": 3, **zero}},
        {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [32]},
        {"name": "fc", "type": "linear", "out_features": 3, "weight_bits": 4,
         "output": "membrane", "out_shape": [3], "neuron": {}},
    ]
    arrays = {"c1.weight": rng.integers(-8, 8, (3, 1, 3, 3, 3), dtype=np.int8),
              "c1.bias": rng.integers(-30, 30, 3).astype(np.int32),
              "c2.weight": rng.integers(-3, 8, (4, 3, 2, 3, 3), dtype=np.int8),
              "c3.weight": rng.integers(-3, 8, (2, 8, 3, 3), dtype=np.int8),
              "fc.weight": rng.integers(-8, 8, (3, 32), dtype=np.int8)}
    manifest = {"format": "spikeforge-bundle", "format_version": 1, "name": "zero_reset_3d",
                "timesteps": 5, "membrane_bits": 24,
                "input": {"shape": [1, 5, 6, 6], "bits": 4, "raw_min": 0.0, "raw_max": 1.0},
                "layers": layers}
    return network_from_parts(manifest, arrays)


def test_independent_executor_reproduces_conv3d(tmp_path):
    network = zero_reset_conv3d_network()
    path = tmp_path / "zero3d.nir"
    assert write_graph(network, path, strict=True)["exact"]
    x = np.random.default_rng(2).integers(0, 16, (8, 1, 5, 6, 6))
    golden = run(network, x, trace=True)
    outputs = execute(nir.read(path), x, network.timesteps)
    for layer in ("c1", "c2", "c3"):
        expected = golden.traces[layer].spikes
        assert expected.sum() > 0, f"{layer} never fires: the comparison would be vacuous"
        # The export carries (C, D, H, W) maps folded as (C*D, H, W): same element order.
        np.testing.assert_array_equal(outputs[f"{layer}.neuron"].reshape(expected.shape),
                                      expected, err_msg=layer)
    np.testing.assert_array_equal(outputs[("v", "fc.neuron")][-1], golden.output_membrane)
    assert_same_network(network, read_graph(path))


# --------------------------------------------------------------------------- snnTorch as producer

def _snntorch_net(beta, seed=0, pool=True):
    """conv -> Leaky -> mean pool -> Leaky -> flatten -> linear -> Leaky (without ``pool``:
    conv -> Leaky -> flatten -> linear -> Leaky), integer weights, per-neuron beta and
    threshold tensors (scalars break snnTorch's export)."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(seed)

    def leaky(shape, threshold, **options):
        return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, threshold),
                         init_hidden=True, reset_mechanism="zero", **options)

    pooling = [torch.nn.AvgPool2d(2), leaky((3, 3, 3), 0.5)] if pool else []
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), leaky((3, 6, 6), 5.0), *pooling,
        torch.nn.Flatten(), torch.nn.Linear(27 if pool else 108, 4),
        leaky((4,), 3.0, output=True),
    )
    with torch.no_grad():
        for module in (net[0], net[-2]):
            module.weight.copy_(torch.randint(-3, 4, module.weight.shape))
            module.bias.copy_(torch.randint(-2, 3, module.bias.shape))
    return torch, net


def _export_snntorch(net, torch, path=None):
    from snntorch.export_nir import export_to_nir

    # export_to_nir divides by 1 - beta (inf at beta = 1) and calls a deprecated nirtorch
    # function; both warnings are snnTorch's, documented in docs/nir.md.
    with pytest.warns(Warning):
        graph = export_to_nir(net, torch.zeros(1, 1, 6, 6), ignore_dims=[0])
    if path is not None:
        nir.write(path, graph)
    return graph


def test_snntorch_graph_imports_with_identical_spikes(tmp_path):
    torch, net = _snntorch_net(beta=1.0)
    path = tmp_path / "snntorch.nir"
    _export_snntorch(net, torch, path)
    timesteps = 7
    network, report = import_graph(nir.read(path), timesteps=timesteps, input_bits=2)
    assert [layer.type for layer in network.layers] == [
        "conv2d", "avgpool2d", "flatten", "linear", "linear"]
    x = np.random.default_rng(3).integers(0, 4, (32, 1, 6, 6))
    golden = run(network, x, trace=True)

    import snntorch.utils

    snntorch.utils.reset(net)
    steps = {0: [], 1: [], 3: []}     # golden layer index -> snnTorch spikes per step
    with torch.no_grad():
        inputs = torch.tensor(x, dtype=torch.float32)
        for _ in range(timesteps):
            s1 = net[1](net[0](inputs))
            s2 = net[3](net[2](s1))
            s3, _ = net[6](net[5](net[4](s2)))
            for index, spikes in zip(steps, (s1, s2, s3)):
                steps[index].append(spikes.numpy())
    for index, spikes in steps.items():
        layer = network.layers[index]
        assert np.sum(spikes) > 0, f"{layer.name} never fires: the comparison would be vacuous"
        np.testing.assert_array_equal(golden.traces[layer.name].spikes, np.stack(spikes),
                                      err_msg=layer.name)
    # The appended counting layer's membrane is each output neuron's spike count.
    np.testing.assert_array_equal(golden.output_membrane, np.stack(steps[3]).sum(axis=0))
    assert len(report["notes"]) == 1 and "counts its spikes" in report["notes"][0]


def test_snntorch_graph_in_memory_reads_like_its_file(tmp_path):
    torch, net = _snntorch_net(beta=1.0)
    path = tmp_path / "snntorch.nir"
    _export_snntorch(net, torch, path)
    from_file, _ = import_graph(nir.read(path))
    in_memory, _ = import_graph(_export_snntorch(net, torch))  # torch tensors in the nodes
    assert_same_network(from_file, in_memory)


def test_snntorch_leaky_beta_below_one_refused(tmp_path):
    torch, net = _snntorch_net(beta=0.875)
    path = tmp_path / "leaky.nir"
    _export_snntorch(net, torch, path)
    with pytest.raises(NIRError) as info:
        read_graph(path)
    # snnTorch writes tau = dt / (1 - beta) with dt = 1e-4 and r = 1 / (1 - beta).
    assert str(info.value) == ("node '1': the leak beta = 0.875 (tau = 0.0008, r = 8) decays "
                               "without rounding, which no contract leak reproduces exactly; "
                               "pass --approximate-leak to round it")


def test_snntorch_leaky_beta_below_one_approximated_on_request(tmp_path):
    # Without the mean pool: a mean into a leaking neuron does not fold (refused).
    torch, net = _snntorch_net(beta=0.875, pool=False)
    path = tmp_path / "leaky.nir"
    _export_snntorch(net, torch, path)
    network, report = import_graph(nir.read(path), approximate_leak=True)
    assert network.layers[0].neuron.leak.to_json() == {"kind": "shift", "shift": 3}
    assert ("node '1': leak beta = 0.875 approximated by V - (V >> 3), which rounds toward "
            "minus infinity") in report["notes"]


def test_conv1d_graph_maps_on_lifted_maps():
    rng = np.random.default_rng(4)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([2, 11])}),
        "c1": nir.Conv1d(input_shape=11, weight=rng.integers(-3, 4, (3, 2, 3)).astype(np.float32),
                         stride=2, padding=1, dilation=1, groups=1,
                         bias=np.array([1, 0, -1], np.float32)),
        "if1": nir.IF(r=np.ones((3, 6), np.float32), v_threshold=np.full((3, 6), 4, np.float32)),
        "flat": nir.Flatten(input_type={"input": np.array([3, 6])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.integers(-3, 4, (2, 18)).astype(np.float32),
                         bias=np.zeros(2, np.float32)),
        "v": nir.I(r=np.ones(2, np.float32)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    names = list(nodes)
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])))
    network, report = import_graph(graph, timesteps=5, input_bits=3)
    assert network.input.shape == (2, 1, 11)
    assert report["notes"] == ["the graph's (2, 11) input is read as (2, 1, 11): Conv1d maps as "
                               "a conv2d"]
    x = rng.integers(0, 8, (16, 2, 11))
    golden = run(network, x[:, :, None, :], trace=True)
    outputs = execute(graph, x, network.timesteps)
    expected = golden.traces[network.layers[0].name].spikes
    assert expected.sum() > 0, "no spikes: the comparison would be vacuous"
    np.testing.assert_array_equal(outputs["if1"], expected[:, :, :, 0, :])
    np.testing.assert_array_equal(outputs[("v", "v")][-1], golden.output_membrane)


# --------------------------------------------------------------------------- hand-built graphs

def refusal(graph, **options):
    with pytest.raises(NIRError) as info:
        import_graph(graph, **options)
    return str(info.value)


def test_tiny_graph_imports():
    network, report = import_graph(tiny_graph(), timesteps=3)
    assert [layer.type for layer in network.layers] == ["linear", "linear"]
    assert network.layers[0].neuron.threshold == 5 and network.layers[0].neuron.reset == "zero"
    assert network.layers[1].output == "membrane" and network.layers[1].bias is None
    assert report["notes"] == []


def test_if_threshold_between_integers_maps_to_the_next_integer():
    ones = np.ones(3, np.float32)
    network, _ = import_graph(tiny_graph(if1=nir.IF(r=ones, v_threshold=ones * 6.5)))
    assert network.layers[0].neuron.threshold == 7


def test_recurrent_edge_refused():
    graph = tiny_graph()
    graph.nodes["rec"] = nir.Linear(weight=np.eye(3, dtype=np.float32))
    graph.edges += [("if1", "rec"), ("rec", "if1")]
    assert refusal(graph) == ("node 'if1': it is on a recurrent edge (a cycle in the graph); "
                              "the integer contract has no recurrence")


def test_nested_subgraph_refused():
    inner = tiny_graph()
    assert refusal(tiny_graph(fc2=inner)) == (
        "node 'fc2': nested subgraphs (snnTorch's recurrent layers) have no spikeforge form; "
        "the contract has no recurrence")


def test_if_resistance_refused():
    ones = np.ones(3, np.float32)
    assert refusal(tiny_graph(if1=nir.IF(r=ones * 2, v_threshold=ones * 4))) == (
        "node 'if1': IF with r = 2.0 scales its input; only r = 1 maps")


def test_nonzero_reset_value_refused():
    ones = np.ones(3, np.float32)
    assert refusal(tiny_graph(if1=nir.IF(r=ones, v_threshold=ones * 4, v_reset=ones))) == (
        "node 'if1': it resets to v_reset = 1.0; the contract resets to 0 or by subtraction")


def test_per_neuron_thresholds_refused():
    ones = np.ones(3, np.float32)
    graph = tiny_graph(if1=nir.IF(r=ones, v_threshold=np.array([1, 2, 3], np.float32)))
    assert refusal(graph) == ("node 'if1': v_threshold differs between neurons; the contract "
                              "has one value per layer")


def test_negative_threshold_refused():
    ones = np.ones(3, np.float32)
    assert refusal(tiny_graph(if1=nir.IF(r=ones, v_threshold=-ones))) == (
        "node 'if1': v_threshold -1.0 is not a non-negative finite number; contract thresholds "
        "are at least 1")


def test_non_integer_weights_refused():
    graph = tiny_graph(fc2=nir.Affine(weight=np.eye(2, 3, dtype=np.float32) * 0.5,
                                      bias=np.zeros(2, np.float32)))
    assert refusal(graph) == ("node 'fc2': the weights are not integers within 8 signed bits; "
                              "pass --weight-bits N to scale and round them (reported)")


def test_non_integer_weights_rounded_with_weight_bits():
    weight = np.array([[0.5, -0.25, 0.0], [0.125, 0.5, 0.3]], np.float32)
    graph = tiny_graph(fc2=nir.Affine(weight=weight, bias=np.zeros(2, np.float32)))
    network, report = import_graph(graph, weight_bits=4)
    # No step of the form 0.5 / m (m <= 7) makes 0.3 an integer: the step is 0.5 / 7.
    expected = np.rint(weight.astype(np.float64) * 7 / 0.5)
    np.testing.assert_array_equal(network.layer("fc2").weight, expected)
    assert network.layer("fc2").weight_bits == 4
    assert len(report["notes"]) == 1 and report["notes"][0].startswith(
        "node 'fc2': weights, bias and threshold divided by the step 0.07142857142857142, "
        "rounded to the nearest integer (largest rounding")


def test_exactly_quantizable_weights_scaled_without_rounding():
    """Half-integer weights and threshold: the step 0.5 keeps every spike."""
    rng = np.random.default_rng(5)
    ones = np.ones(3, np.float32)
    weight = rng.integers(-6, 7, (3, 4)).astype(np.float32) / 2
    weight[0, 0] = 3.0                          # the peak: step 3.0 / 6 = 0.5
    graph = tiny_graph(fc1=nir.Affine(weight=weight, bias=np.array([0.5, 0, -1], np.float32)),
                       if1=nir.IF(r=ones, v_threshold=ones * 2.25))
    network, report = import_graph(graph, weight_bits=4, timesteps=6, input_bits=3)
    assert report["notes"] == ["node 'fc1': weights, bias and threshold divided by the step 0.5, "
                               "exactly, no rounding"]
    assert network.layers[0].neuron.threshold == 5      # v > 2.25 is 0.5 * V > 2.25: V >= 5
    x = rng.integers(0, 8, (64, 4))
    golden = run(network, x, trace=True)
    outputs = execute(graph, x, network.timesteps)
    assert golden.traces[network.layers[0].name].spikes.sum() > 0
    np.testing.assert_array_equal(outputs["if1"], golden.traces[network.layers[0].name].spikes)
    np.testing.assert_array_equal(outputs[("v", "out_v")][-1], golden.output_membrane)


def test_leaky_output_refused():
    two = np.ones(2, np.float32)
    graph = tiny_graph(out_v=nir.LI(tau=two * 4, r=two * 4, v_leak=two * 0))
    assert refusal(graph) == ("node 'out_v': the leak beta = 0.75 (tau = 4, r = 4) decays without "
                              "rounding, which no contract leak reproduces exactly; pass "
                              "--approximate-leak to round it")


def test_nonzero_v_leak_refused():
    ones = np.ones(3, np.float32)
    lif = nir.LIF(tau=ones * np.inf, r=ones * np.inf, v_leak=ones, v_threshold=ones)
    assert refusal(tiny_graph(if1=lif)) == ("node 'if1': a non-zero v_leak has no contract form")


def test_synaptic_filter_refused():
    ones = np.ones(3, np.float32)
    cuba = nir.CubaLIF(tau_syn=ones * 2e-4, tau_mem=ones * np.inf, r=ones * np.inf,
                       v_leak=ones * 0, v_threshold=ones, w_in=2.0)
    assert refusal(tiny_graph(if1=cuba)) == ("node 'if1': the synaptic current filter (w_in = "
                                             "2.0) has no contract form")


def test_delay_refused():
    graph = tiny_graph(if1=nir.Delay(delay=np.ones(3, np.float32)))
    assert refusal(graph) == "node 'if1': Delay has no spikeforge layer"


def test_missing_output_refused():
    graph = tiny_graph()
    del graph.nodes["out"]
    graph.edges.remove(("out_v", "out"))
    assert refusal(graph) == ("the graph has 1 Input and 0 Output nodes; spikeforge reads graphs "
                              "with exactly one of each")


def test_same_padding_refused():
    sum_pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                             padding=np.array([0, 0]))
    graph = pool_graph(sum_pool, nir.Threshold(np.full((2, 2, 2), 0.5, np.float32)),
                        padding="same")
    assert refusal(graph) == ("node 'conv': Conv2d padding 'same' is not an explicit integer "
                              "padding; write the padding as integers")


def test_sum_pool_and_threshold_is_a_max_pool():
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                         padding=np.array([0, 0]))
    network, _ = import_graph(pool_graph(pool, nir.Threshold(np.full((2, 2, 2), 0.5,
                                                                      np.float32))))
    assert network.layers[1].type == "maxpool2d"


def test_average_pool_folds_into_a_following_if():
    pool = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                         padding=np.array([0, 0]))
    after = nir.IF(r=np.ones((2, 2, 2), np.float32), v_threshold=np.full((2, 2, 2), 0.5,
                                                                         np.float32))
    network, _ = import_graph(pool_graph(pool, after))
    # mean > 0.5 over a 2x2 window is a window count > 2: count >= 3.
    assert network.layers[1].type == "avgpool2d" and network.layers[1].neuron.threshold == 3


def test_snntorch_mean_pool_into_a_leaky_neuron_refused(tmp_path):
    torch, net = _snntorch_net(beta=0.875)
    path = tmp_path / "leaky.nir"
    _export_snntorch(net, torch, path)
    assert refusal(nir.read(path), approximate_leak=True) == (
        "node '2': AvgPool2d is a mean; it folds exactly only into a directly following IF "
        "neuron (write SumPool2d)")


def test_average_pool_not_into_an_if_refused():
    pool = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                         padding=np.array([0, 0]))
    assert refusal(pool_graph(pool, nir.Threshold(np.full((2, 2, 2), 0.5, np.float32)))) == (
        "node 'after': Threshold maps only after a SumPool2d of spikes with 0 <= threshold < 1 "
        "(a max-pool)")


def test_current_shift_exports_as_input_scaling_and_round_trips(tmp_path):
    manifest, arrays = network_to_parts(read_bundle(MODELS[0]))
    manifest["layers"][0]["neuron"]["current_shift"] = 3
    network = network_from_parts(manifest, arrays)
    name = network.layers[0].name
    graph, report = export_graph(network)
    node = graph.nodes[f"{name}.neuron"]
    assert np.all(np.asarray(node.r) == 2.0 ** -3)
    notes = {entry["node"]: entry["notes"] for entry in report["nodes"]}
    assert ("the current shift I >> 3 rounds toward minus infinity; NIR's input scaling by "
            "2**-3 does not round") in notes[f"{name}.neuron"]
    path = tmp_path / "shifted.nir"
    write_graph(network, path)
    again = read_graph(path)
    assert_same_network(network, again)
    assert again.layers[0].neuron.current_shift == 3
