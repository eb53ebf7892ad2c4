"""Alembic environment: runs migrations on the engine the Store hands over (or the configured URL)."""

from alembic import context
from sqlalchemy import create_engine, text

from harness.store import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # several processes may open a new database at once: one migrates, the others wait, then see it done
            connection.execute(text("SELECT pg_advisory_xact_lock(7355608)"))
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
