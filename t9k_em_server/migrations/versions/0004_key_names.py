"""key names and key-bound web sessions: api_keys.name; ui_sessions.key_id (revoking a key ends
the sessions it opened, not the user's others).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 23:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=64), nullable=False, server_default=''))
    with op.batch_alter_table('ui_sessions') as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_ui_sessions_key_id', 'api_keys', ['key_id'], ['id'],
                                    ondelete='CASCADE')
        batch_op.create_index('ix_ui_sessions_key_id', ['key_id'])


def downgrade() -> None:
    with op.batch_alter_table('ui_sessions') as batch_op:
        batch_op.drop_index('ix_ui_sessions_key_id')
        batch_op.drop_constraint('fk_ui_sessions_key_id', type_='foreignkey')
        batch_op.drop_column('key_id')
    with op.batch_alter_table('api_keys') as batch_op:
        batch_op.drop_column('name')
