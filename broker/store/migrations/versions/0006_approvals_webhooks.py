"""approvals and webhooks: per-package required approvals, one row per maintainer's approval of a stage,
webhooks and their durable outbox

Revision ID: 0006_approvals_webhooks
Revises: 0005_scope_trust
Create Date: 2026-11-28 06:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_approvals_webhooks'
down_revision = '0005_scope_trust'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('required_approvals', sa.Integer(), server_default='1', nullable=False))
    op.create_table('stage_approvals',
    sa.Column('stage_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('user_name', sa.String(length=214), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('stage_id', 'user_id')
    )
    op.create_table('webhooks',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('package', sa.String(length=214), nullable=True),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('events', sa.Text(), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=214), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['package'], ['packages.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.create_index('ix_webhooks_package', ['package'], unique=False)
    op.create_table('webhook_outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('hook_id', sa.String(length=36), nullable=False),
    sa.Column('package', sa.String(length=214), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.Float(), nullable=False),
    sa.Column('lease_owner', sa.String(length=36), nullable=True),
    sa.Column('lease_until', sa.Float(), nullable=True),
    sa.Column('delivered_at', sa.Float(), nullable=True),
    sa.Column('failed_at', sa.Float(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['hook_id'], ['webhooks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhook_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_outbox_stream', ['hook_id', 'package', 'id'], unique=False)
        batch_op.create_index('ix_webhook_outbox_pending', ['delivered_at', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    op.drop_table('webhook_outbox')
    op.drop_table('webhooks')
    op.drop_table('stage_approvals')
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.drop_column('required_approvals')
