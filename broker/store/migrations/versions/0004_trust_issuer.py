"""trust relationships record the issuer they trust: a token of one issuer never matches another's

Existing relationships get their kind's default issuer as the deployment configures it when this
migration runs (STAGEGATE_OIDC_GITHUB_ISSUER, STAGEGATE_OIDC_GITLAB_ISSUER): what they trusted before.

Revision ID: 0004_trust_issuer
Revises: 0003_audit
Create Date: 2026-11-28 07:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

from broker.settings import Settings

revision = '0004_trust_issuer'
down_revision = '0003_audit'
branch_labels = None
depends_on = None

relationships = sa.table('trust_relationships', sa.column('provider', sa.String), sa.column('issuer', sa.String))


def upgrade() -> None:
    with op.batch_alter_table('trust_relationships', schema=None) as batch_op:
        batch_op.add_column(sa.Column('issuer', sa.String(length=255), nullable=True))
    settings = Settings()
    for kind in ('github', 'gitlab'):
        op.execute(relationships.update().where(relationships.c.provider == kind)
                   .values(issuer=settings.default_issuer(kind)))
    with op.batch_alter_table('trust_relationships', schema=None) as batch_op:
        batch_op.alter_column('issuer', existing_type=sa.String(length=255), nullable=False)
        batch_op.drop_constraint('uq_trust_same_config', type_='unique')
        batch_op.create_unique_constraint('uq_trust_same_config', ['package', 'provider', 'issuer', 'claims'])
        batch_op.create_index('ix_trust_provider_issuer', ['provider', 'issuer'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('trust_relationships', schema=None) as batch_op:
        batch_op.drop_index('ix_trust_provider_issuer')
        batch_op.drop_constraint('uq_trust_same_config', type_='unique')
        batch_op.create_unique_constraint('uq_trust_same_config', ['package', 'provider', 'claims'])
        batch_op.drop_column('issuer')
