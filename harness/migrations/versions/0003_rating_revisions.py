"""rating app: keep every saved answer (rating_revision)

Ratings already saved through the app (studies of origin "app") are copied in as their current revision.
Imported studies have no history: their CSV files are the record.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FLAGS = ("walls_not_visible", "unnatural_artifacts", "possible_pathology", "cropped_image", "wall_destruction")


def upgrade() -> None:
    op.create_table(
        "rating_revision",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rating_id", sa.Integer, sa.ForeignKey("rating.id", ondelete="CASCADE"), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("rating", sa.Integer, nullable=False),
        *[sa.Column(f, sa.Boolean, nullable=False) for f in FLAGS],
        sa.Column("comment", sa.Text),
        sa.Column("saved_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("rating_id", "revision", name="uq_rating_revision"),
    )
    op.create_index("ix_rating_revision_rating_id", "rating_revision", ["rating_id"])
    cols = ", ".join(FLAGS)
    op.execute(
        f"INSERT INTO rating_revision (rating_id, revision, rating, {cols}, comment, saved_at) "
        f"SELECT r.id, r.revision, r.rating, {', '.join('r.' + f for f in FLAGS)}, r.comment, "
        "COALESCE(r.updated_at, r.rated_at) FROM rating r JOIN study s ON s.id = r.study_id WHERE s.origin = 'app'"
    )


def downgrade() -> None:
    op.drop_table("rating_revision")
