"""scope-wide trust relationships: a workflow trusted for every package of @scope, new ones included

Revision ID: 0005_scope_trust
Revises: 0004_trust_issuer
Create Date: 2026-11-28 07:00:00.000000
"""
import sqlalchemy as sa
from alembic import op


revision = '0005_scope_trust'
down_revision = '0004_trust_issuer'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'scope_trust_relationships',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('scope', sa.String(length=214), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('issuer', sa.String(length=255), nullable=False),
        sa.Column('claims', sa.Text(), nullable=False),
        sa.Column('permissions', sa.Text(), nullable=False),
        sa.Column('bound', sa.Text(), nullable=False),
        sa.Column('created_by', sa.String(length=214), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('scope', 'provider', 'issuer', 'claims', name='uq_scope_trust_same_config'),
    )


def downgrade() -> None:
    op.drop_table('scope_trust_relationships')
