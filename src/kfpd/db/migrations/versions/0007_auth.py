"""Multi-user mode: API tokens (digests only) and role bindings added at run time.

Revision ID: 0007
Revises: 0011
Create Date: 2026-12-03 20:30:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'api_tokens',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user', sa.String(length=255), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('last_used_at', sa.BigInteger(), nullable=False),
        sa.Column('revoked_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    )
    op.create_table(
        'role_bindings',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('user', sa.String(length=255), nullable=False),
        sa.Column('group', sa.String(length=255), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('namespace', sa.String(length=63), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_role_bindings')),
        sa.UniqueConstraint(
            'user', 'group', 'role', 'namespace',
            name=op.f('uq_role_bindings_user_group_role_namespace'),
        ),
    )


def downgrade() -> None:
    op.drop_table('role_bindings')
    op.drop_table('api_tokens')
