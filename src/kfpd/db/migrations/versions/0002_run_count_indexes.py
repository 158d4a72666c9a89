"""run indexes that cover the counts behind ListRuns' total_size

(namespace, display_name, id) and (experiment_id, created_at, id) gain a trailing
storage_state; (namespace, storage_state, state) is new. The new index is created before
the old one is dropped, as MySQL needs an index for the experiment_id foreign key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 09:40:00.000000
"""
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_namespace_storage_state_state'), ['namespace', 'storage_state', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_namespace_display_name_id_storage_state'), ['namespace', 'display_name', 'id', 'storage_state'], unique=False)
        batch_op.drop_index(batch_op.f('ix_runs_namespace_display_name_id'))
        batch_op.create_index(batch_op.f('ix_runs_experiment_id_created_at_id_storage_state'), ['experiment_id', 'created_at', 'id', 'storage_state'], unique=False)
        batch_op.drop_index(batch_op.f('ix_runs_experiment_id_created_at_id'))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_experiment_id_created_at_id'), ['experiment_id', 'created_at', 'id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_runs_experiment_id_created_at_id_storage_state'))
        batch_op.create_index(batch_op.f('ix_runs_namespace_display_name_id'), ['namespace', 'display_name', 'id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_runs_namespace_display_name_id_storage_state'))
        batch_op.drop_index(batch_op.f('ix_runs_namespace_storage_state_state'))
