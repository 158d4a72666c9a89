"""recurring_runs and recurring_run_slots; runs(recurring_run_id, state)

A recurring run is a schedule; each slot it fires is claimed by a row keyed on (schedule,
scheduled time), written in the same transaction as the run, so a slot fires once. The runs
index counts a schedule's active runs for max_concurrency. Existing rows are untouched.

Revision ID: 0006
Revises: 0008
Create Date: 2026-12-03 19:22:44.254105
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recurring_runs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('experiment_id', sa.String(length=36), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('pipeline_id', sa.String(length=36), nullable=True),
    sa.Column('pipeline_version_id', sa.String(length=36), nullable=True),
    sa.Column('pipeline_spec', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('platform_spec', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('runtime_config', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('service_account', sa.String(length=255), nullable=False),
    sa.Column('max_concurrency', sa.Integer(), nullable=False),
    sa.Column('cron', sa.String(length=255), nullable=False),
    sa.Column('interval_second', sa.BigInteger(), nullable=False),
    sa.Column('start_time', sa.BigInteger(), nullable=False),
    sa.Column('end_time', sa.BigInteger(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('no_catchup', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('settled_until', sa.BigInteger(), nullable=False),
    sa.Column('last_index', sa.BigInteger(), nullable=False),
    sa.Column('error', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_recurring_runs_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recurring_runs'))
    )
    with op.batch_alter_table('recurring_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recurring_runs_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_recurring_runs_experiment_id_created_at_id'), ['experiment_id', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_recurring_runs_namespace_created_at_id'), ['namespace', 'created_at', 'id'], unique=False)

    op.create_table('recurring_run_slots',
    sa.Column('recurring_run_id', sa.String(length=36), nullable=False),
    sa.Column('scheduled_at', sa.BigInteger(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['recurring_run_id'], ['recurring_runs.id'], name=op.f('fk_recurring_run_slots_recurring_run_id_recurring_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('recurring_run_id', 'scheduled_at', name=op.f('pk_recurring_run_slots'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_recurring_run_id_state'), ['recurring_run_id', 'state'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_recurring_run_id_state'))

    op.drop_table('recurring_run_slots')
    # Its indexes go with it (MySQL refuses to drop the one its foreign key needs first).
    op.drop_table('recurring_runs')
