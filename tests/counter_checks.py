"""The check every RTL-vs-model test makes: each hardware counter the cycle model predicts
(``rtl.cycle_model.PREDICTED_COUNTERS``: the total and the PE array, aggregation sweep,
event scanner and first-layer busy cycles) equals the model's figure, image by image."""

from spikeforge.rtl.cycle_model import PREDICTED_COUNTERS


def measured_and_predicted(results):
    """``(measured, predicted)``: per image, the counters of ``Harness`` results and the
    cycle model's; equal when the RTL keeps the model's schedule."""
    measured = [{name: r.counters.get(name) for name in PREDICTED_COUNTERS} for r in results]
    predicted = [dict(r.predicted_counters) for r in results]
    return measured, predicted


def assert_counters_predicted(results):
    measured, predicted = measured_and_predicted(results)
    assert measured == predicted
