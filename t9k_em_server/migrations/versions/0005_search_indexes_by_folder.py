"""search indexes by folder: the run index tables carry the Run's Folder and lead their search
indexes with it (partial and covering), so a scoped search reads only that scope's entries;
on SQLite the tables are clustered on their primary keys (WITHOUT ROWID).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 23:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TABLES = ('run_labels', 'run_hparams', 'run_summaries')


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column('folder_id', sa.String(length=36), nullable=True))
        # A Run's Folder is its parent (Runs are never moved; a rename keeps the parent).
        op.execute(f"UPDATE {table} SET folder_id = "
                   f"(SELECT nodes.parent_id FROM nodes WHERE nodes.id = {table}.node_id)")
        # SQLite rebuilds the table (for NOT NULL), now clustered on its primary key (WITHOUT
        # ROWID): probing a Run's row by (node_id, …) is then one B-tree descent, not two.
        with op.batch_alter_table(table, recreate='auto',
                                  table_kwargs={'sqlite_with_rowid': False}) as batch:
            batch.alter_column('folder_id', existing_type=sa.String(length=36), nullable=False)
    op.drop_index('ix_run_labels_label', table_name='run_labels')
    op.drop_index('ix_run_hparams_key_num', table_name='run_hparams')
    op.drop_index('ix_run_hparams_key_text', table_name='run_hparams')
    op.drop_index('ix_run_summaries_type_name', table_name='run_summaries')
    op.create_index('ix_run_labels_folder_label', 'run_labels', ['folder_id', 'label', 'node_id'])
    op.create_index('ix_run_hparams_folder_num', 'run_hparams',
                    ['folder_id', 'key', 'kind', 'num', 'node_id'],
                    sqlite_where=sa.text('num IS NOT NULL'), postgresql_where=sa.text('num IS NOT NULL'))
    op.create_index('ix_run_hparams_folder_text', 'run_hparams', ['folder_id', 'key', 'text', 'node_id'],
                    sqlite_where=sa.text('text IS NOT NULL'), postgresql_where=sa.text('text IS NOT NULL'))
    op.create_index('ix_run_summaries_folder_metric', 'run_summaries',
                    ['folder_id', 'type', 'name', 'node_id'])
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ANALYZE')  # planner statistics for the new indexes (PostgreSQL: autovacuum)


def downgrade() -> None:
    op.drop_index('ix_run_summaries_folder_metric', table_name='run_summaries')
    op.drop_index('ix_run_hparams_folder_text', table_name='run_hparams')
    op.drop_index('ix_run_hparams_folder_num', table_name='run_hparams')
    op.drop_index('ix_run_labels_folder_label', table_name='run_labels')
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('folder_id')
    op.create_index('ix_run_summaries_type_name', 'run_summaries', ['type', 'name'])
    op.create_index('ix_run_hparams_key_text', 'run_hparams', ['key', 'text'])
    op.create_index('ix_run_hparams_key_num', 'run_hparams', ['key', 'num'])
    op.create_index('ix_run_labels_label', 'run_labels', ['label'])
