"""never reuse ids (SQLite AUTOINCREMENT on the human-evaluation tables); run liveness (pid, host, heartbeat)

SQLite hands out the highest freed INTEGER PRIMARY KEY again unless the table is AUTOINCREMENT: a rater still
signed in to a study that was replaced could then reach a row of the new study. The five human-evaluation
tables are recreated with AUTOINCREMENT (rows and ids kept; env.py turns SQLite's foreign keys off while
tables are copied, so no cascade fires). PostgreSQL sequences never reuse ids: nothing to do there.

``run`` gains ``pid``, ``host`` and ``heartbeat_at``: a ``running`` row whose process is gone is shown as
``interrupted`` (Store.reap_stale_runs).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

HUMAN_TABLES = ("study", "participant", "image", "rating", "rating_revision")  # parents first


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("pid", sa.Integer, nullable=True))
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        for table in HUMAN_TABLES:
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
                pass


def downgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("host")
        batch.drop_column("pid")
