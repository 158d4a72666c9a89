"""runs.display_name_folded: a stored lower(display_name), indexed for IS_SUBSTRING counts

ListRuns with ``display_name IS_SUBSTRING`` counts its matches for total_size. ILIKE (or
lower() LIKE lower()) per row took 60-120 ms over 200k names on PostgreSQL; a plain LIKE over
an index of the stored lower-case name takes ~20 ms. SQLite cannot add a stored generated
column in place, so there the batch rebuilds the table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 12:30:00
"""
from typing import Literal

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _recreate() -> Literal['auto', 'always']:
    return 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None, recreate=_recreate()) as batch_op:
        batch_op.add_column(
            sa.Column(
                'display_name_folded',
                sa.String(length=510),
                sa.Computed('lower(display_name)', persisted=True),
                nullable=True,
            )
        )
        batch_op.create_index(
            batch_op.f('ix_runs_namespace_display_name_folded_storage_state'),
            ['namespace', 'display_name_folded', 'storage_state'],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None, recreate=_recreate()) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_namespace_display_name_folded_storage_state'))
        batch_op.drop_column('display_name_folded')
