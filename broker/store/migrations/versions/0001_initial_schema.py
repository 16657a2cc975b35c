"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 06:48:12.402052
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=True),
    sa.Column('package', sa.String(length=214), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('oidc_jtis',
    sa.Column('issuer', sa.String(length=255), nullable=False),
    sa.Column('jti', sa.String(length=255), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('issuer', 'jti')
    )
    with op.batch_alter_table('oidc_jtis', schema=None) as batch_op:
        batch_op.create_index('ix_oidc_jtis_expires', ['expires_at'], unique=False)

    op.create_table('packages',
    sa.Column('name', sa.String(length=214), nullable=False),
    sa.Column('access', sa.String(length=16), nullable=False),
    sa.Column('mfa', sa.String(length=16), nullable=False),
    sa.Column('rev', sa.Integer(), nullable=False),
    sa.Column('readme', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('modified_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=214), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('tfa_mode', sa.String(length=20), nullable=True),
    sa.Column('tfa_pending', sa.Boolean(), nullable=False),
    sa.Column('tfa_secret', sa.Text(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('dist_tags',
    sa.Column('package', sa.String(length=214), nullable=False),
    sa.Column('tag', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['package'], ['packages.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('package', 'tag')
    )
    op.create_table('otp_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('otp_failures', schema=None) as batch_op:
        batch_op.create_index('ix_otp_failures_user_at', ['user_id', 'at'], unique=False)

    op.create_table('otp_steps',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('used_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'step')
    )
    op.create_table('owners',
    sa.Column('package', sa.String(length=214), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['package'], ['packages.name'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('package', 'user_id')
    )
    op.create_table('recovery_codes',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'code_digest')
    )
    op.create_table('tokens',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('display', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('readonly', sa.Boolean(), nullable=False),
    sa.Column('bypass_2fa', sa.Boolean(), nullable=False),
    sa.Column('packages', sa.Text(), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('cidr_whitelist', sa.Text(), nullable=False),
    sa.Column('trust_package', sa.String(length=214), nullable=True),
    sa.Column('trust_permissions', sa.Text(), nullable=False),
    sa.Column('trust_relationships', sa.Text(), nullable=False),
    sa.Column('origin', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('digest')
    )
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.create_index('ix_tokens_user', ['user_id'], unique=False)

    op.create_table('trust_relationships',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('package', sa.String(length=214), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('claims', sa.Text(), nullable=False),
    sa.Column('permissions', sa.Text(), nullable=False),
    sa.Column('bound', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=214), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['package'], ['packages.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('package', 'provider', 'claims', name='uq_trust_same_config')
    )
    op.create_table('versions',
    sa.Column('package', sa.String(length=214), nullable=False),
    sa.Column('version', sa.String(length=256), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('manifest', sa.Text(), nullable=False),
    sa.Column('blob', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['package'], ['packages.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('package', 'version')
    )
    op.create_table('stages',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('package', sa.String(length=214), nullable=False),
    sa.Column('version', sa.String(length=256), nullable=False),
    sa.Column('tag', sa.String(length=128), nullable=False),
    sa.Column('readme', sa.Text(), nullable=False),
    sa.Column('integrity', sa.String(length=255), nullable=False),
    sa.Column('shasum', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('actor_type', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['package', 'version'], ['versions.package', 'versions.version'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('package', 'idempotency_key', name='uq_stage_idempotency'),
    sa.UniqueConstraint('package', 'version', name='uq_stage_version')
    )
    with op.batch_alter_table('stages', schema=None) as batch_op:
        batch_op.create_index('ix_stages_created', ['created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('stages', schema=None) as batch_op:
        batch_op.drop_index('ix_stages_created')

    op.drop_table('stages')
    op.drop_table('versions')
    op.drop_table('trust_relationships')
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_tokens_user')

    op.drop_table('tokens')
    op.drop_table('recovery_codes')
    op.drop_table('owners')
    op.drop_table('otp_steps')
    with op.batch_alter_table('otp_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_otp_failures_user_at')

    op.drop_table('otp_failures')
    op.drop_table('dist_tags')
    op.drop_table('users')
    op.drop_table('packages')
    with op.batch_alter_table('oidc_jtis', schema=None) as batch_op:
        batch_op.drop_index('ix_oidc_jtis_expires')

    op.drop_table('oidc_jtis')
    op.drop_table('audit_log')
