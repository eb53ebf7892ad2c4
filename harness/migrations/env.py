"""Alembic environment: runs migrations on the engine the Store hands over (or the configured URL)."""

from alembic import context
from sqlalchemy import create_engine, text

from harness.store import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # batch migrations copy SQLite tables (create new, copy, drop old, rename): with foreign keys on,
            # dropping a parent table would cascade-delete its children's rows. Off only while migrating
            # (outside a transaction, or the pragma is ignored); checked again below.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        if connection.dialect.name == "postgresql":
            # several processes may open a new database at once: one migrates, the others wait, then see it done
            connection.execute(text("SELECT pg_advisory_xact_lock(7355608)"))
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        try:
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if sqlite:
                connection.rollback()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left rows without their parent rows: {broken[:5]}")


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
