"""nodes: index (parent_id, type, id) instead of (parent_id), covering the Runs of a Folder.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 00:20:00
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_nodes_parent_type', 'nodes', ['parent_id', 'type', 'id'])
    op.drop_index('ix_nodes_parent_id', table_name='nodes')
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ANALYZE nodes')


def downgrade() -> None:
    op.create_index('ix_nodes_parent_id', 'nodes', ['parent_id'])
    op.drop_index('ix_nodes_parent_type', table_name='nodes')
