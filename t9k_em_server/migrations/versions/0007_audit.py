"""audit: who shared, edited, moved, deleted or restored what, and when.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 23:35:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_name', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('node_id', sa.String(length=36), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('path_to', sa.String(length=1024), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_audit_events_path', 'audit_events', ['path'])
    op.create_index('ix_audit_events_path_to', 'audit_events', ['path_to'])


def downgrade() -> None:
    op.drop_index('ix_audit_events_path_to', table_name='audit_events')
    op.drop_index('ix_audit_events_path', table_name='audit_events')
    op.drop_table('audit_events')
