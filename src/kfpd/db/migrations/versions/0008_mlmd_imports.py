"""mlmd_imports: progress of `kfpd import-mlmd`, read by the server's start-up gate

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-03 19:30:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'mlmd_imports',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('source', sa.String(length=1024), nullable=False),
        sa.Column('kfp_source', sa.String(length=1024), nullable=False),
        sa.Column('namespace', sa.String(length=63), nullable=False),
        sa.Column('state', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.BigInteger(), nullable=False),
        sa.Column('finished_at', sa.BigInteger(), nullable=False),
        sa.Column(
            'report',
            sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mlmd_imports')),
    )


def downgrade() -> None:
    op.drop_table('mlmd_imports')
