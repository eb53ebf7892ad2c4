"""human evaluation: study, participant, image, rating

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FLAGS = ("walls_not_visible", "unnatural_artifacts", "possible_pathology", "cropped_image", "wall_destruction")


def upgrade() -> None:
    op.create_table(
        "study",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("content_hash", sa.String(64)),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "participant",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
        sa.Column("participant_id", sa.String(200), nullable=False),
        sa.Column("experience_years", sa.Float),
        sa.Column("weekly_readings", sa.Float),
        sa.Column("specialty", sa.String(200)),
        sa.Column("age", sa.Float),
        sa.Column("sex", sa.String(50)),
        sa.Column("language", sa.String(50)),
        sa.Column("token_hash", sa.String(128), unique=True),
        sa.Column("answers", sa.JSON, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("study_id", "participant_id", name="uq_participant_study_pid"),
    )
    op.create_index("ix_participant_study_id", "participant", ["study_id"])
    op.create_table(
        "image",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
        sa.Column("image_id", sa.String(300), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("path", sa.Text),
        sa.Column("run_id", sa.String(36)),
        sa.UniqueConstraint("study_id", "image_id", name="uq_image_study_iid"),
    )
    op.create_index("ix_image_study_id", "image", ["study_id"])
    op.create_table(
        "rating",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
        sa.Column("participant_pk", sa.Integer, sa.ForeignKey("participant.id", ondelete="CASCADE"), nullable=False),
        sa.Column("image_pk", sa.Integer, sa.ForeignKey("image.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rating", sa.Integer, nullable=False),
        *[sa.Column(f, sa.Boolean, nullable=False) for f in FLAGS],
        sa.Column("comment", sa.Text),
        sa.Column("position", sa.Integer),
        sa.Column("rated_at", sa.DateTime(timezone=True)),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("participant_pk", "image_pk", name="uq_rating_participant_image"),
    )
    op.create_index("ix_rating_study_id", "rating", ["study_id"])


def downgrade() -> None:
    op.drop_table("rating")
    op.drop_table("image")
    op.drop_table("participant")
    op.drop_table("study")
