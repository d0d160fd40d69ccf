"""Readings downsampled per bucket, and metric windows refilled from them at start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.model import Message, Value
from agent.world.history import Reading, bucket_of, summarize
from agent.world.machine import MetricWindows, refill_windows
from agent.world.metricwindow import Window

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def telemetry(at: datetime, **fields: Value) -> Message:
    return Message("telemetry", "t", "plant1", "press-1", fields, at, at)


def test_buckets_are_aligned_on_the_epoch() -> None:
    assert bucket_of(T0 + timedelta(seconds=59.9), 60) == T0
    assert bucket_of(T0 + timedelta(seconds=60), 60) == T0 + timedelta(minutes=1)
    assert bucket_of(T0 + timedelta(seconds=7), 5) == T0 + timedelta(seconds=5)


def test_a_batch_becomes_one_reading_per_subject_metric_and_bucket() -> None:
    messages = [
        telemetry(T0 + timedelta(seconds=10), temp_c=70.0, state="running", cycles=5),
        telemetry(T0 + timedelta(seconds=40), temp_c=80.0, vibration=2),
        telemetry(T0 + timedelta(seconds=20), temp_c=60.0),  # late, in the same bucket
        telemetry(T0 + timedelta(seconds=70), temp_c=90.0),
        Message("stock", "s", "plant1", "BRG-6204", {"on_hand": 12}, T0, T0),
        Message("receipt", "r", "plant1", "BRG-6204", {"quantity": 5}, T0, T0),
    ]
    readings = {(r.subject, r.metric, r.bucket): r for r in summarize(messages, 60)}
    assert set(readings) == {
        ("press-1", "temp_c", T0),
        ("press-1", "vibration", T0),
        ("press-1", "temp_c", T0 + timedelta(minutes=1)),
        ("BRG-6204", "on_hand", T0),
    }  # no state, no counter, nothing from a receipt
    first = readings["press-1", "temp_c", T0]
    assert (first.count, first.min, first.max, first.mean) == (3, 60.0, 80.0, 70.0)
    assert (first.last, first.last_at) == (80.0, T0 + timedelta(seconds=40))  # by time
    assert readings["BRG-6204", "on_hand", T0].kind == "stock"


def test_merging_two_summaries_weighs_their_means_by_count() -> None:
    a = Reading("machine", "p", "m", "x", T0, 3, 1.0, 5.0, 2.0, 5.0, T0)
    b = Reading("machine", "p", "m", "x", T0, 1, 0.0, 9.0, 6.0, 0.0, T0 - timedelta(seconds=1))
    merged = a.merged(b)
    assert (merged.count, merged.min, merged.max, merged.mean) == (4, 0.0, 9.0, 3.0)
    assert merged.last == 5.0  # b is older


def test_a_summary_counts_as_its_samples_in_a_window() -> None:
    one_by_one, summed = Window(600.0), Window(600.0)
    for value in (1.0, 2.0, 6.0):
        one_by_one.add(100.0, value)
    summed.add(100.0, 3.0, count=3)
    assert summed.samples() == 3
    assert summed.mean() == one_by_one.mean() == 3.0


def test_refilled_windows_give_the_average_and_about_the_trend_of_the_samples() -> None:
    live, refilled = MetricWindows(), MetricWindows()
    start = T0.timestamp()
    samples = [(start + 30.0 * i, 50.0 + i) for i in range(20)]  # +120 per hour
    for at_s, value in samples:
        live.add("temp_c", at_s, value, 600.0, 3600.0)
    summaries = []
    for bucket in range(10):  # two samples a minute, summarised per minute
        pair = samples[2 * bucket : 2 * bucket + 2]
        summaries.append(("temp_c", start + 60.0 * bucket + 15.0, 2, (pair[0][1] + pair[1][1]) / 2))
    refill_windows(refilled, {}, summaries)
    now = samples[-1][0]
    before, after = live.values(now), refilled.values(now)
    assert after["temp_c_avg"] == before["temp_c_avg"] == 59.5
    assert abs(float(after["temp_c_trend"]) - float(before["temp_c_trend"])) < 1.0
