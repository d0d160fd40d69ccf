"""The child process that migrates the schema for a daemon (`schemacheck.migrate_in_child`):
the URL on stdin, (before, after) as JSON on the last line of stdout, a refusal as
{"error": ...} (the daemon raises it as its own StoreError). Its own module: it needs both
db.py (to open the URL as the daemon would) and migrate.py, and db.py must not import it.
"""

from __future__ import annotations

import json
import sys

from agent.errors import StoreError
from agent.store.db import open_engine
from agent.store.migrate import upgrade


def main() -> None:
    url = sys.stdin.read().strip()
    try:
        engine = open_engine(url)
        try:
            before, after = upgrade(engine)
        finally:
            engine.dispose()
    except StoreError as exc:
        print(json.dumps({"error": str(exc)}))
        return
    print(json.dumps({"before": before, "after": after}))
