"""artifact_tasks: unique key led by (artifact_id, type), for lineage

A lineage step from an artifact looks up its producer (output links) or its consumers
(input links). The unique key was (artifact_id, task_id, type, iteration, key), so finding the
one producer of a dataset that thousands of tasks read scanned all those links. The same key
ordered (artifact_id, type, task_id, iteration, key) goes straight to them and covers the
step; it keeps the same uniqueness and serves every lookup the separate artifact_id index did,
which is dropped.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 09:00:00
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

OLD_KEY = ['artifact_id', 'task_id', 'type', 'iteration', 'key']
NEW_KEY = ['artifact_id', 'type', 'task_id', 'iteration', 'key']


def upgrade() -> None:
    # New before old: on MySQL the artifact_id foreign key needs an index at every moment.
    # On SQLite the batch rebuilds the table once.
    with op.batch_alter_table('artifact_tasks', schema=None) as batch_op:
        batch_op.create_unique_constraint(
            'uq_artifact_tasks_artifact_id_type_task_id_iteration_key', NEW_KEY
        )
        batch_op.drop_constraint(
            'uq_artifact_tasks_artifact_id_task_id_type_iteration_key', type_='unique'
        )
        batch_op.drop_index('ix_artifact_tasks_artifact_id')


def downgrade() -> None:
    with op.batch_alter_table('artifact_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_artifact_tasks_artifact_id', ['artifact_id'], unique=False)
        batch_op.create_unique_constraint(
            'uq_artifact_tasks_artifact_id_task_id_type_iteration_key', OLD_KEY
        )
        batch_op.drop_constraint(
            'uq_artifact_tasks_artifact_id_type_task_id_iteration_key', type_='unique'
        )
