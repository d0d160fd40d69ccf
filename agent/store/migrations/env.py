"""Alembic's entry point: runs migrations on the connection `agent.store.migrate` hands over.

SQLite gets batch mode (it cannot ALTER most things in place); both use the tables' metadata.
"""

from alembic import context

from agent.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `factory-agent db upgrade` (agent.store.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
