"""approvals and webhooks: per-package required approvals, one row per maintainer's approval of a stage

Revision ID: 0006_approvals_webhooks
Revises: 0003_audit
Create Date: 2026-11-28 06:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_approvals_webhooks'
down_revision = '0003_audit'
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


def downgrade() -> None:
    op.drop_table('stage_approvals')
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.drop_column('required_approvals')
