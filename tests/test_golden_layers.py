"""Layer by layer: golden/synapse.py and golden/neuron.py against the naive reference.

Three angles: the golden functions called directly on random layers; each layer of a
``run(..., trace=True)`` recomputed by the naive reference from the golden trace of its inputs
(so a mismatch points at one layer); and directed cases whose expected values are worked out
by hand (saturation, floor shifts, thresholds, resets, padding, strides, exactness switch).
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import naive_reference as naive
from random_networks import random_input, random_network
from spikeforge.golden import Layer, Leak, Neuron, network_from_parts, run
from spikeforge.golden.neuron import aggregate, apply_leak, initial_membrane, saturate
from spikeforge.golden.synapse import (
    avgpool2d_current, exact_dtype, fanout, maxpool2d, weighted_current,
)


def _leak_json(leak):
    return {"kind": leak.kind, "shift": leak.shift, "factor": leak.factor,
            "frac_bits": leak.frac_bits}


def _neuron_json(neuron):
    obj = {"leak": _leak_json(neuron.leak), "current_shift": neuron.current_shift}
    if neuron.threshold is not None:
        obj.update(threshold=neuron.threshold, reset=neuron.reset, v_init=neuron.v_init)
    return obj


def _as_int64(values):
    return np.asarray(values).astype(np.int64)


# ------------------------------------------------------------------------- direct calls

@pytest.mark.parametrize("seed", range(60))
def test_synapse_functions_match_naive(seed):
    manifest, arrays = random_network(seed)
    network = network_from_parts(manifest, arrays)
    rng = np.random.default_rng(seed)
    top = (1 << network.input.bits) - 1
    for layer in network.layers:
        if layer.type in ("flatten", "add"):
            continue
        if layer.is_direct_encoded:
            x, max_input = random_input(rng, manifest, 3), top
        else:
            density = rng.choice([0.0, 0.1, 0.5, 0.9, 1.0])
            x = (rng.random((3, *layer.in_shape)) < density).astype(np.uint8)
            max_input = 1
        if layer.type == "maxpool2d":
            got = maxpool2d(x, layer)
            want = [naive.maxpool2d(image, layer.kernel, layer.stride) for image in x]
            assert got.dtype == np.uint8
        elif layer.type == "avgpool2d":
            got = avgpool2d_current(x, layer)
            want = [naive.avgpool2d_current(image, layer.kernel, layer.stride) for image in x]
        elif layer.type == "linear":
            got = weighted_current(x, layer, max_input)
            want = [naive.linear_current(image, layer.weight, layer.bias) for image in x]
        else:
            got = weighted_current(x, layer, max_input)
            want = [naive.conv_current(image, layer.weight, layer.bias, layer.stride,
                                       layer.padding) for image in x]
        np.testing.assert_array_equal(got, _as_int64(want), err_msg=layer.name)
        if layer.type == "maxpool2d":
            continue
        if layer.type == "linear":
            want_fanout = naive.linear_fanout(layer.weight)
        elif layer.type == "avgpool2d":
            want_fanout = naive.avgpool_fanout(layer.in_shape, layer.kernel, layer.stride)
        else:
            want_fanout = naive.conv_fanout(layer.in_shape, layer.weight, layer.stride,
                                            layer.padding)
        np.testing.assert_array_equal(fanout(layer), _as_int64(want_fanout), err_msg=layer.name)


_LEAKS = st.one_of(
    st.just(Leak()),
    st.integers(1, 31).map(lambda k: Leak("shift", shift=k)),
    st.integers(1, 16).flatmap(lambda f: st.tuples(st.integers(0, 1 << f), st.just(f)))
      .map(lambda p: Leak("mul", factor=p[0], frac_bits=p[1])),
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(bits=st.integers(2, 32), leak=_LEAKS, data=st.data())
def test_aggregate_matches_naive(bits, leak, data):
    if leak.kind == "shift" and leak.shift > bits - 1:
        leak = Leak("shift", shift=bits - 1)
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    spiking = data.draw(st.booleans())
    shift = data.draw(st.sampled_from([0, 0, 1, 3, 15]))
    if spiking:
        neuron = Neuron(data.draw(st.integers(1, high)), leak,
                        data.draw(st.sampled_from(["subtract", "zero"])),
                        data.draw(st.sampled_from(["zero", "half"])), current_shift=shift)
    else:
        neuron = Neuron(None, leak, current_shift=shift)
    membrane = data.draw(st.lists(st.integers(low, high), min_size=1, max_size=8))
    current = data.draw(st.lists(st.integers(-(1 << 40), 1 << 40), min_size=len(membrane),
                                 max_size=len(membrane)))
    got_v, got_s = aggregate(np.array(membrane, dtype=np.int64), np.array(current, np.int64),
                             neuron, bits)
    steps = [naive.neuron_step(v, i, _neuron_json(neuron), bits)
             for v, i in zip(membrane, current)]
    np.testing.assert_array_equal(got_v, [v for v, _ in steps])
    if spiking:
        np.testing.assert_array_equal(got_s, [s for _, s in steps])
        assert got_s.dtype == np.uint8
        assert initial_membrane((2,), neuron).tolist() == [naive.initial_membrane(
            _neuron_json(neuron))] * 2
    else:
        assert got_s is None
    leaked = apply_leak(np.array(membrane, dtype=np.int64), leak)
    np.testing.assert_array_equal(leaked, [naive.leak(v, _leak_json(leak)) for v in membrane])


# ------------------------------------------------------------------------- via run()

@pytest.mark.parametrize("seed", range(300, 360))
def test_each_layer_of_a_run_from_its_traced_inputs(seed):
    """Recompute every layer of a golden run from the golden trace of its own inputs."""
    manifest, arrays = random_network(seed)
    network = network_from_parts(manifest, arrays)
    x = random_input(np.random.default_rng(seed), manifest, 2)
    traces = run(network, x, trace=True).traces
    bits = network.membrane_bits
    for layer in network.layers:
        trace = traces[layer.name]
        for t in range(network.timesteps):
            for n in range(len(x)):
                inputs = [x[n] if s == "input" else
                          (traces[s].spikes if traces[s].spikes is not None
                           else traces[s].current)[t, n] for s in layer.inputs]
                if layer.type == "maxpool2d":
                    want = naive.maxpool2d(inputs[0], layer.kernel, layer.stride)
                    np.testing.assert_array_equal(trace.spikes[t, n], _as_int64(want))
                    continue
                if layer.type == "flatten":
                    want = naive.flatten(inputs[0], layer.start_dim, layer.end_dim)
                    np.testing.assert_array_equal(trace.spikes[t, n], _as_int64(want))
                    continue
                if layer.type == "avgpool2d":
                    current = naive.avgpool2d_current(inputs[0], layer.kernel, layer.stride)
                elif layer.type == "linear":
                    current = naive.linear_current(inputs[0], layer.weight, layer.bias)
                elif layer.type == "add":
                    current = sum(s * np.asarray(v).astype(object)
                                  for s, v in zip(layer.scales, inputs))
                else:
                    current = naive.conv_current(inputs[0], layer.weight, layer.bias,
                                                 layer.stride, layer.padding)
                np.testing.assert_array_equal(trace.current[t, n], _as_int64(current))
                if layer.neuron is None:
                    continue
                obj = _neuron_json(layer.neuron)
                before = (trace.membrane[t - 1, n] if t else
                          np.full(layer.out_shape, naive.initial_membrane(obj)
                                  if layer.neuron.threshold is not None else 0))
                steps = [naive.neuron_step(int(v), int(i), obj, bits)
                         for v, i in zip(before.flat, trace.current[t, n].flat)]
                np.testing.assert_array_equal(trace.membrane[t, n].ravel(),
                                              [v for v, _ in steps])
                if trace.spikes is not None:
                    np.testing.assert_array_equal(trace.spikes[t, n].ravel(),
                                                  [s for _, s in steps])


# ------------------------------------------------------------------------- directed: neuron

def _step(v, i, neuron, bits=8):
    got_v, got_s = aggregate(np.array([v], dtype=np.int64), np.array([i], dtype=np.int64),
                             neuron, bits)
    return int(got_v[0]), None if got_s is None else int(got_s[0])


def test_saturation_at_both_ends():
    out = Neuron(None)
    assert _step(100, 1000, out) == (127, None)
    assert _step(-100, -1000, out) == (-128, None)
    assert _step(127, 1, out) == (127, None)
    assert _step(-128, -1, out) == (-128, None)
    assert _step(0, -(1 << 40), out, bits=32) == (-(1 << 31), None)
    assert _step(0, 1 << 40, out, bits=32) == ((1 << 31) - 1, None)
    # A saturated value fires; the reset applies to the saturated value, not the raw sum.
    assert _step(100, 1000, Neuron(100, reset="subtract")) == (27, 1)
    assert _step(-100, -1000, Neuron(1, reset="subtract")) == (-128, 0)
    np.testing.assert_array_equal(saturate(np.array([-9, -8, 7, 8]), 4), [-8, -8, 7, 7])


def test_negative_membranes_leak_with_floor_shifts():
    assert -5 >> 1 == -3  # Python's >> floors: the contract's arithmetic shift
    v = np.array([-5, -4, -1, 0, 1, 5], dtype=np.int64)
    # shift 1: V - floor(V / 2)
    np.testing.assert_array_equal(apply_leak(v, Leak("shift", shift=1)), [-2, -2, 0, 0, 1, 3])
    # mul 3/4: floor(3 V / 4)
    np.testing.assert_array_equal(apply_leak(v, Leak("mul", factor=3, frac_bits=2)),
                                  [-4, -3, -1, 0, 0, 3])
    # mul 1/2 on -5 is floor(-2.5) = -3, not -2
    assert apply_leak(np.array([-5]), Leak("mul", factor=1, frac_bits=1)).tolist() == [-3]
    # the edge factors: 0 forgets everything, 2**frac_bits keeps everything
    np.testing.assert_array_equal(apply_leak(v, Leak("mul", factor=0, frac_bits=4)), 0 * v)
    np.testing.assert_array_equal(apply_leak(v, Leak("mul", factor=16, frac_bits=4)), v)
    # leak applies before the current: (-5 - (-3)) + 1 = -1
    assert _step(-5, 1, Neuron(None, Leak("shift", shift=1))) == (-1, None)


def test_threshold_equality_and_resets():
    assert _step(0, 10, Neuron(10, reset="subtract")) == (0, 1)
    assert _step(0, 9, Neuron(10, reset="subtract")) == (9, 0)
    assert _step(3, 7, Neuron(10, reset="zero")) == (0, 1)
    assert _step(0, 25, Neuron(10, reset="subtract")) == (15, 1)  # one spike per step at most
    assert _step(0, 25, Neuron(10, reset="zero")) == (0, 1)
    assert _step(-3, 2, Neuron(1, reset="zero")) == (-1, 0)
    assert initial_membrane((1,), Neuron(7, v_init="half")).tolist() == [3]
    assert initial_membrane((1,), Neuron(7, v_init="zero")).tolist() == [0]


# ------------------------------------------------------------------------- directed: synapses

def _conv_layer(weight, in_shape, stride, padding, bias=None, kind="conv2d"):
    weight = np.asarray(weight, dtype=np.int8)
    kernel = weight.shape[2:]
    out = [(s + 2 * p - k) // st + 1 for s, k, st, p in zip(in_shape[1:], kernel, stride,
                                                             padding)]
    return Layer(name="c", type=kind, inputs=("x",), output="spikes", in_shape=tuple(in_shape),
                 out_shape=(weight.shape[0], *out), weight=weight, bias=bias, weight_bits=8,
                 kernel=tuple(kernel), stride=tuple(stride), padding=tuple(padding))


def test_padding_edges_by_hand():
    w = np.arange(1, 10).reshape(1, 1, 3, 3)  # w[ky, kx] = 3 ky + kx + 1
    layer = _conv_layer(w, (1, 3, 3), (1, 1), (1, 1))
    x = np.zeros((1, 1, 3, 3), dtype=np.uint8)
    x[0, 0, 0, 0] = 1  # a corner spike reaches the 4 outputs around it through the padding
    np.testing.assert_array_equal(weighted_current(x, layer, 1)[0, 0],
                                  [[5, 4, 0], [2, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(fanout(layer)[0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_strides_by_hand():
    w = np.arange(1, 10).reshape(1, 1, 3, 3)
    layer = _conv_layer(w, (1, 5, 5), (2, 2), (1, 1))  # 3x3 output at rows/cols -1, 1, 3
    x = np.zeros((1, 1, 5, 5), dtype=np.uint8)
    x[0, 0, 4, 4] = 1  # only output (2, 2) sees it, through tap (1, 1)
    x[0, 0, 1, 2] = 1  # outputs (0|1, 1) see it through taps (2|0, 1)
    want = np.zeros((3, 3), dtype=np.int64)
    want[2, 2] += 5
    want[0, 1] += 8
    want[1, 1] += 2
    np.testing.assert_array_equal(weighted_current(x, layer, 1)[0, 0], want)
    per_axis = np.array([1, 2, 1, 2, 1])  # taps of one axis that land on an output
    np.testing.assert_array_equal(fanout(layer)[0], np.outer(per_axis, per_axis))


def test_pruned_weights_cost_nothing():
    w = np.zeros((2, 1, 2, 2), dtype=np.int8)
    w[1, 0, 0, 0] = -3
    layer = _conv_layer(w, (1, 3, 3), (1, 1), (0, 0))
    np.testing.assert_array_equal(fanout(layer)[0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def _linear_layer(weight, bias=None):
    weight = np.asarray(weight, dtype=np.int8)
    return Layer(name="fc", type="linear", inputs=("x",), output="spikes",
                 in_shape=(weight.shape[1],), out_shape=(weight.shape[0],), weight=weight,
                 bias=bias, weight_bits=8)


def test_exact_dtype_boundaries():
    one = np.ones((1, 1), dtype=np.int8)
    assert exact_dtype(one, None, (1 << 24) - 1) == np.float32
    assert exact_dtype(one, None, 1 << 24) == np.float64
    assert exact_dtype(one, np.array([1], np.int32), (1 << 24) - 1) == np.float64
    assert exact_dtype(-one, None, (1 << 53) - 1) == np.float64
    assert exact_dtype(-one, None, 1 << 53) == np.int64


def test_float64_path_is_exact_beyond_2_pow_24():
    weight = np.array([[127, 127, 127, 1], [-128, 127, -128, 127]], dtype=np.int8)
    bias = np.array([3, -(1 << 30)], dtype=np.int32)
    layer = _linear_layer(weight, bias)
    assert exact_dtype(weight, bias, 65535) == np.float64
    x = np.array([[65535, 65535, 65535, 65535], [65535, 65533, 65531, 1]], dtype=np.int64)
    want = [[sum(int(w) * int(v) for w, v in zip(row, image)) + int(b)
             for row, b in zip(weight, bias)] for image in x]
    assert want[0][0] > (1 << 24) and want[0][0] % 2 == 1  # float32 could not hold it
    np.testing.assert_array_equal(weighted_current(x, layer, 65535), want)
    assert int(np.float32(want[0][0])) != want[0][0]  # the switch matters here


def test_int64_path_is_exact_beyond_2_pow_53():
    rng = np.random.default_rng(5)
    weight = rng.integers(-128, 128, size=(3, 64)).astype(np.int8)
    weight[0] = 127
    top = (1 << 47) - 1
    layer = _linear_layer(weight)
    assert exact_dtype(weight, None, top) == np.int64
    x = rng.integers(top - 1000, top + 1, size=(2, 64))
    x[:, 0] |= 1
    want = [[sum(int(w) * int(v) for w, v in zip(row, image)) for row in weight] for image in x]
    assert abs(want[0][0]) > (1 << 53)
    assert int(np.float64(want[0][0])) != want[0][0]  # float64 would have rounded it
    np.testing.assert_array_equal(weighted_current(x, layer, top), want)


def test_first_layer_current_crossing_2_pow_24_through_run():
    """A 16-bit input into 127-weights: the direct-encoded current exceeds float32's limit."""
    manifest = {
        "format": "spikeforge-bundle", "format_version": 1, "name": "wide",
        "timesteps": 2, "membrane_bits": 32,
        "input": {"shape": [4], "bits": 16, "raw_min": 0.0, "raw_max": 1.0},
        "layers": [{"name": "fc", "type": "linear", "output": "membrane", "out_features": 1,
                    "out_shape": [1], "weight_bits": 8, "neuron": {}}],
    }
    network = network_from_parts(manifest, {"fc.weight": np.array([[127, 127, 127, 1]],
                                                                  dtype=np.int8)})
    x = np.array([[65535, 65535, 65535, 65534]])
    result = run(network, x, trace=True)
    once = 127 * 65535 * 3 + 65534  # 25_034_369: odd, above 2**24
    np.testing.assert_array_equal(result.traces["fc"].current[:, 0, 0], [once, once])
    np.testing.assert_array_equal(result.output_membrane, [[2 * once]])


# ------------------------------------------------------------------------- docs/neuron.md

def test_worked_examples_of_the_contract():
    """The examples of docs/neuron.md sections 6, 7 and 10, through the golden functions."""
    layer = _conv_layer([[[[1, -1], [2, 0]]]], (1, 3, 3), (2, 2), (1, 1),
                        bias=np.array([3], dtype=np.int32))
    x = np.arange(1, 10).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(weighted_current(x, layer, 9)[0, 0], [[3, 7], [-1, 18]])
    assert int(fanout(layer).sum()) == 5  # first-layer MACs: 0 + 1 + 1 + 3
    cube = _conv_layer(np.array([3, -2]).reshape(1, 1, 2, 1, 1), (1, 2, 2, 2), (1, 1, 1),
                       (0, 0, 0), kind="conv3d")
    x = np.array([[[1, 0], [1, 1]], [[0, 1], [1, 0]]]).reshape(1, 1, 2, 2, 2)
    np.testing.assert_array_equal(weighted_current(x, cube, 1)[0, 0, 0], [[3, -2], [1, 3]])
    spikes = np.array([[0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 0, 1], [1, 0, 0, 0]],
                      dtype=np.uint8).reshape(1, 1, 4, 4)
    pool = Layer(name="p", type="maxpool2d", inputs=("x",), output="spikes",
                 in_shape=(1, 4, 4), out_shape=(1, 2, 2), kernel=(2, 2), stride=(2, 2))
    np.testing.assert_array_equal(maxpool2d(spikes, pool)[0, 0], [[1, 0], [1, 1]])
    np.testing.assert_array_equal(avgpool2d_current(spikes, pool)[0, 0], [[1, 0], [3, 1]])
