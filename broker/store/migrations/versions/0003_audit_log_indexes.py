"""audit log indexes: a package's history newest first, and time filters and retention pruning

Revision ID: 0003_audit
Revises: 0002_password_failures
Create Date: 2026-11-28 03:30:00.000000
"""
from alembic import op


revision = '0003_audit'
down_revision = '0002_password_failures'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_package_id', ['package', 'id'], unique=False)
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_at')
        batch_op.drop_index('ix_audit_log_package_id')
