"""The benchmark's publisher, a process of its own: the workload stream at QoS 1, paced or flat out.

    python bench/publisher.py --port P --count N [--rate R] [--seed S] [--skus K] [--machines M]
                              [--sweep] [--history-min H]

`--history-min H` sends, before the stream, the machines' telemetry of the last H minutes, with
its `ts`: each machine once per bucket of the agent's default trend window (3 of its 60 minutes),
and once per bucket of its average window (30 s of 10 minutes) over the last 10: the agent's
metric windows fill as in a plant that has run that long.

Prints one JSON line when the broker has acknowledged every message: start, end, count.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's agent package

import paho.mqtt.client as paho
from workload import Stream

from agent.world.machine import AVG_WINDOW_MIN, TREND_WINDOW_MIN
from agent.world.metricwindow import BUCKETS

INFLIGHT = 1000
# At most this many unacknowledged messages: paho's own queue beyond its in-flight window can
# stall when fed from another thread, so the window is never filled.
WINDOW = 500
STALL_S = 120.0
# A bucket of the agent's default trend and average windows (3 minutes and 30 s).
TREND_STEP_S = TREND_WINDOW_MIN * 60 / BUCKETS
AVERAGE_STEP_S = AVG_WINDOW_MIN * 60 / BUCKETS
AVERAGE_SPAN_S = AVG_WINDOW_MIN * 60 + AVERAGE_STEP_S  # a bucket more than the window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s; 0: as fast as it can")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--machines", type=int, default=1_000)
    parser.add_argument("--first-probe", type=int, default=0, help="machine of the first probe")
    parser.add_argument("--sweep", action="store_true", help="visit every subject first")
    parser.add_argument("--history-min", type=float, default=0.0, help="telemetry of the past")
    args = parser.parse_args()
    stream = Stream(args.skus, args.machines, args.seed, args.first_probe, args.sweep)
    times = history_times(args.history_min * 60, time.time())
    past = len(times) * args.machines
    total = past + args.count
    done = threading.Event()
    window = threading.BoundedSemaphore(WINDOW)
    acked = 0

    def on_publish(client: paho.Client, userdata: object, mid: int, *rest: object) -> None:
        nonlocal acked
        acked += 1
        window.release()
        if acked >= total:
            done.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{args.seed}")
    client.max_inflight_messages_set(INFLIGHT)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    for i in range(past):
        if not window.acquire(timeout=STALL_S):
            raise SystemExit(f"no acknowledgement from the broker for {STALL_S} s")
        client.publish(*stream.history(i, times), qos=1)
    start = time.time()
    for i in range(args.count):
        if args.rate:
            ahead = start + i / args.rate - time.time()
            if ahead > 0.001:
                time.sleep(ahead)  # pacing to the fixed rate
        if not window.acquire(timeout=STALL_S):
            raise SystemExit(f"no acknowledgement from the broker for {STALL_S} s")
        topic, payload = stream.message(i, time.time_ns() // 1000)
        client.publish(topic, payload, qos=1)
    if not done.wait(STALL_S):
        raise SystemExit(f"only {acked} of {total} messages acknowledged")
    end = time.time()
    client.loop_stop()
    client.disconnect()
    print(json.dumps({"start": start, "end": end, "count": args.count}), flush=True)


def history_times(span_s: float, end_s: float) -> list[float]:
    """When each round of the machines' past is sent, ascending: every trend bucket over
    `span_s`, and every average bucket over the last average window and a bucket of it."""
    times = {end_s - k * TREND_STEP_S for k in range(1, int(span_s // TREND_STEP_S) + 1)}
    fine = min(span_s, AVERAGE_SPAN_S)
    times.update(end_s - k * AVERAGE_STEP_S for k in range(1, int(fine // AVERAGE_STEP_S) + 1))
    return sorted(times)


if __name__ == "__main__":
    main()
