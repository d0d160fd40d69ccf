"""The benchmark's publisher, a process of its own: the workload stream at QoS 1, paced or flat out.

    python bench/publisher.py --port P --count N [--rate R] [--seed S] [--skus K] [--machines M]
                              [--sweep] [--history-min H]

`--history-min H` sends, before the stream, the machines' telemetry of the last H minutes, with
its `ts`: each machine every 3 minutes (a 60-minute trend window's bucket), and every 30 seconds
over the last 10 minutes (a 10-minute average window's): the agent's metric windows fill as in a
plant that has run that long.

Prints one JSON line when the broker has acknowledged every message: start, end, count.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import paho.mqtt.client as paho
from workload import Stream

INFLIGHT = 1000
# At most this many unacknowledged messages: paho's own queue beyond its in-flight window can
# stall when fed from another thread, so the window is never filled.
WINDOW = 500
STALL_S = 120.0
# The agent's default metric windows, 60 and 10 minutes, have 20 buckets each.
TREND_STEP_S = 180.0
AVERAGE_STEP_S = 30.0
AVERAGE_SPAN_S = 630.0


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
    """When each round of the machines' past is sent, ascending: every 3 minutes over `span_s`,
    and every 30 seconds over the last 10.5 minutes of it (a bucket more than the window)."""
    times = {end_s - k * TREND_STEP_S for k in range(1, int(span_s // TREND_STEP_S) + 1)}
    fine = min(span_s, AVERAGE_SPAN_S)
    times.update(end_s - k * AVERAGE_STEP_S for k in range(1, int(fine // AVERAGE_STEP_S) + 1))
    return sorted(times)


if __name__ == "__main__":
    main()
