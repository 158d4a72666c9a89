"""tasks: (parent_task_id, state) instead of (parent_task_id)

Every task that ends counts its parent's children by state to settle the parent (status
roll-up); with state in the index that count reads the index only. The new index is created
before the old one is dropped, as MySQL needs an index for the parent_task_id foreign key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 12:00:00
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_tasks_parent_task_id_state'), ['parent_task_id', 'state'], unique=False
        )
        batch_op.drop_index(batch_op.f('ix_tasks_parent_task_id'))


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_tasks_parent_task_id'), ['parent_task_id'], unique=False
        )
        batch_op.drop_index(batch_op.f('ix_tasks_parent_task_id_state'))
