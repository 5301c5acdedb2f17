"""trash: deleted nodes (with their subtrees, moved under /.trash/) restorable until purged.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('trash',
    sa.Column('node_id', sa.String(length=36), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('parent_id', sa.String(length=36), nullable=False),
    sa.Column('deleted_by', sa.Integer(), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['deleted_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('node_id'))
    op.create_index('ix_trash_deleted_at', 'trash', ['deleted_at'])


def downgrade() -> None:
    op.drop_index('ix_trash_deleted_at', table_name='trash')
    op.drop_table('trash')
