"""password failures: per-account and per-address backoff of password checks

Revision ID: 0002_password_failures
Revises: 0001
Create Date: 2026-11-28 03:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_password_failures'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('password_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account', sa.String(length=214), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('password_failures', schema=None) as batch_op:
        batch_op.create_index('ix_password_failures_account_at', ['account', 'at'], unique=False)
        batch_op.create_index('ix_password_failures_address_at', ['address', 'at'], unique=False)
        batch_op.create_index('ix_password_failures_at', ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('password_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_password_failures_at')
        batch_op.drop_index('ix_password_failures_address_at')
        batch_op.drop_index('ix_password_failures_account_at')
    op.drop_table('password_failures')
