"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 07:25:42.489462
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('artifacts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('type', sa.Integer(), nullable=False),
    sa.Column('uri', sa.String(length=2048), nullable=True),
    sa.Column('uri_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('last_update', sa.BigInteger(), nullable=False),
    sa.Column('metadata', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('number_value', sa.Double(), nullable=True),
    sa.Column('identity_key', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_artifacts')),
    sa.UniqueConstraint('namespace', 'identity_key', name=op.f('uq_artifacts_namespace_identity_key'))
    )
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_artifacts_namespace_created_at_id'), ['namespace', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_artifacts_namespace_name_id'), ['namespace', 'name', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_artifacts_namespace_type_created_at_id'), ['namespace', 'type', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_artifacts_namespace_uri_hash'), ['namespace', 'uri_hash'], unique=False)

    op.create_table('experiments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('storage_state', sa.Integer(), nullable=False),
    sa.Column('last_run_created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_experiments')),
    sa.UniqueConstraint('namespace', 'display_name', name=op.f('uq_experiments_namespace_display_name'))
    )
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_experiments_namespace_created_at_id'), ['namespace', 'created_at', 'id'], unique=False)

    op.create_table('pipelines',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('tags', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pipelines')),
    sa.UniqueConstraint('namespace', 'name', name=op.f('uq_pipelines_namespace_name'))
    )
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pipelines_namespace_created_at_id'), ['namespace', 'created_at', 'id'], unique=False)

    op.create_table('pipeline_versions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('pipeline_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('pipeline_spec', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('platform_spec', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('code_source_url', sa.Text(), nullable=False),
    sa.Column('package_url', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], name=op.f('fk_pipeline_versions_pipeline_id_pipelines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pipeline_versions')),
    sa.UniqueConstraint('pipeline_id', 'name', name=op.f('uq_pipeline_versions_pipeline_id_name'))
    )
    with op.batch_alter_table('pipeline_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pipeline_versions_pipeline_id_created_at_id'), ['pipeline_id', 'created_at', 'id'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('experiment_id', sa.String(length=36), nullable=True),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('pipeline_id', sa.String(length=36), nullable=True),
    sa.Column('pipeline_version_id', sa.String(length=36), nullable=True),
    sa.Column('pipeline_name', sa.String(length=255), nullable=False),
    sa.Column('pipeline_spec', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('platform_spec', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('spec_inline', sa.Integer(), nullable=False),
    sa.Column('runtime_config', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('service_account', sa.String(length=255), nullable=False),
    sa.Column('storage_state', sa.Integer(), nullable=False),
    sa.Column('state', sa.Integer(), nullable=False),
    sa.Column('state_history', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('error', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('scheduled_at', sa.BigInteger(), nullable=False),
    sa.Column('finished_at', sa.BigInteger(), nullable=False),
    sa.Column('recurring_run_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_runs_experiment_id_experiments'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_created_at_id'), ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_experiment_id_created_at_id'), ['experiment_id', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_namespace_created_at_id'), ['namespace', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_namespace_display_name_id'), ['namespace', 'display_name', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_namespace_finished_at_id'), ['namespace', 'finished_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_namespace_state_created_at_id'), ['namespace', 'state', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_state_created_at_id'), ['state', 'created_at', 'id'], unique=False)

    op.create_table('tasks',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('parent_task_id', sa.String(length=36), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('scope_path', sa.Text(), nullable=False),
    sa.Column('type', sa.Integer(), nullable=False),
    sa.Column('state', sa.Integer(), nullable=False),
    sa.Column('state_history', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('status_metadata', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('type_attributes', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('iteration_index', sa.BigInteger(), nullable=True),
    sa.Column('pods', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('cache_fingerprint', sa.String(length=255), nullable=False),
    sa.Column('input_parameters', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('output_parameters', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('started_at', sa.BigInteger(), nullable=False),
    sa.Column('finished_at', sa.BigInteger(), nullable=False),
    sa.Column('logical_key', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['parent_task_id'], ['tasks.id'], name=op.f('fk_tasks_parent_task_id_tasks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_tasks_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks')),
    sa.UniqueConstraint('id', 'run_id', name=op.f('uq_tasks_id_run_id')),
    sa.UniqueConstraint('logical_key', name=op.f('uq_tasks_logical_key'))
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_cache_lookup', ['cache_fingerprint', 'namespace', 'state', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_parent_task_id'), ['parent_task_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_run_id_created_at_id'), ['run_id', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_run_id_parent_task_id_created_at_id'), ['run_id', 'parent_task_id', 'created_at', 'id'], unique=False)

    op.create_table('artifact_tasks',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('artifact_id', sa.String(length=36), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('type', sa.Integer(), nullable=False),
    sa.Column('iteration', sa.BigInteger(), nullable=False),
    sa.Column('producer', sa.JSON().with_variant(sa.JSON(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('key', sa.String(length=191), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['artifact_id'], ['artifacts.id'], name=op.f('fk_artifact_tasks_artifact_id_artifacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_artifact_tasks_run_id_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id', 'run_id'], ['tasks.id', 'tasks.run_id'], name=op.f('fk_artifact_tasks_task_id_run_id_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_artifact_tasks')),
    sa.UniqueConstraint('artifact_id', 'task_id', 'type', 'iteration', 'key', name=op.f('uq_artifact_tasks_artifact_id_task_id_type_iteration_key'))
    )
    with op.batch_alter_table('artifact_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_artifact_tasks_artifact_id'), ['artifact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_artifact_tasks_run_id_type'), ['run_id', 'type'], unique=False)
        batch_op.create_index(batch_op.f('ix_artifact_tasks_task_id_type'), ['task_id', 'type'], unique=False)



def downgrade() -> None:
    # Dropping a table drops its indexes; dropping indexes first fails on MySQL when a
    # foreign key needs them.
    for table in (
        "artifact_tasks",
        "tasks",
        "runs",
        "pipeline_versions",
        "pipelines",
        "experiments",
        "artifacts",
    ):
        op.drop_table(table)
