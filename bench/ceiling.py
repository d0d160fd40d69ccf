"""The bare ceiling: a paho subscriber that only decodes JSON and acknowledges (QoS 1, manual ack).

    python bench/ceiling.py --port P --count N [--mqtt5]

Prints `ready` once subscribed, then one JSON line when N messages arrived: first, last, count.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import paho.mqtt.client as paho


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--topic", default="factory/#")
    parser.add_argument("--mqtt5", action="store_true", help="MQTT 5, as the agent speaks")
    args = parser.parse_args()
    done, ready = threading.Event(), threading.Event()
    seen = {"count": 0, "first": 0.0, "last": 0.0}

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        json.loads(message.payload)
        client.ack(message.mid, message.qos)
        seen["count"] += 1
        if seen["count"] == 1:
            seen["first"] = time.time()
        if seen["count"] >= args.count:
            seen["last"] = time.time()
            done.set()

    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id="bench-ceiling",
        manual_ack=True,
        protocol=paho.MQTTv5 if args.mqtt5 else paho.MQTTv311,
    )
    client.on_message = on_message
    client.on_subscribe = lambda *a: ready.set()
    client.connect("127.0.0.1", args.port)
    client.subscribe(args.topic, qos=1)
    client.loop_start()
    ready.wait(10)
    print("ready", flush=True)
    if not done.wait(args.count / 500 + 60):  # slower than 500/s: something is stuck
        raise SystemExit(f"only {seen['count']} of {args.count} messages arrived")
    client.loop_stop()
    client.disconnect()
    print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    main()
