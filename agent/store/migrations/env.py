"""Alembic's entry point: runs migrations on the connection `agent.store.migrate` hands over.

SQLite gets batch mode (it cannot ALTER most things in place); both use the tables' metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from alembic import context

from agent.store.tables import UTCDateTime, metadata

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `factory-agent db upgrade` (agent.store.migrate)")


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Revisions must not import the app: our column type is written as what it stores."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


context.configure(
    connection=connection,
    render_item=render_item,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
