"""PostgreSQL going away under the agent: its connections are terminated, as a server restart
would (without restarting the shared test server); the agent retries, loses and doubles nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from agent.store.db import open_engine
from agent.store.repository import Store
from tests.faults.ledger import Sender, tally
from tests.faults.test_delivery_under_faults import finish, publish_paced
from tests.support.agent_process import AgentProcess, write_config
from tests.support.databases import POSTGRES_URL_ENV, postgres_schema
from tests.support.mosquitto import Mosquitto

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not os.environ.get(POSTGRES_URL_ENV), reason=f"set {POSTGRES_URL_ENV}"),
]
APPLICATION = "factory-agent-fault-test"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_schema(os.environ[POSTGRES_URL_ENV]) as url:
        yield (
            make_url(url)
            .update_query_dict({"application_name": APPLICATION})
            .render_as_string(hide_password=False)
        )


def test_terminated_database_connections_lose_and_double_nothing(
    broker: Mosquitto, counted_rules: Path, postgres_url: str, tmp_path: Path
) -> None:
    messages = 2_000
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=postgres_url,
        client_id="agent-pg-faults",
        rules=counted_rules,
    )
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    admin = open_engine(os.environ[POSTGRES_URL_ENV])
    terminated: list[int] = []

    def terminate() -> None:
        with admin.begin() as connection:
            killed = connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": APPLICATION},
            ).all()
        terminated.append(len(killed))

    store = Store.open(postgres_url)
    sender = Sender(broker)
    try:
        agent.wait_for("mqtt_subscribed", timeout=30)
        faults = {n: terminate for n in (400, 800, 1_200, 1_600)}
        publish_paced(sender, range(1, messages + 1), faults)  # type: ignore[arg-type]
        sent = sender.wait_acked(messages, timeout=60)
        finish(agent, sender, store, messages + 1)
        counts = tally(store, sent, range(1, messages + 1))
    finally:
        sender.close()
        agent.kill()
        store.close()
        admin.dispose()
    print(f"\nfaults: PostgreSQL connections terminated {len(terminated)} times; {counts}")
    assert sum(terminated) >= 1
    assert (counts.lost, counts.doubled) == (0, 0), str(counts)
