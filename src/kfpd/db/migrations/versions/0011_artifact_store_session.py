"""artifacts.store_session_info: which object-store provider settings wrote an artifact

Upstream's store_session_info (provider and settings, secret *references* only): the server
reads an artifact with the settings recorded when it was written. NULL for local files and
for artifacts stored before this revision (read with the current configuration).

Revision ID: 0011
Revises: 0006
Create Date: 2026-12-03 19:50:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'store_session_info',
                sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.drop_column('store_session_info')
