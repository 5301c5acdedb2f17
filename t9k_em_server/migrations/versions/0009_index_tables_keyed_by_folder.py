"""index tables keyed by folder: the primary keys of run_labels, run_hparams and run_summaries
lead with the Run's Folder and the field, ``node_id`` last (plus an index on ``node_id``), so
the rows that one search reads for many Runs of a Folder lie together (see docs/server.md,
"How search scales"); run_fields gets the Folder too (from the Run's parent) and the key
``(folder_id, node_id)``. SQLite rebuilds the four tables (WITHOUT ROWID, clustered on the new
keys); PostgreSQL swaps the primary key constraints.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 02:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

FIELDS = [('node_id', sa.String(36), False), ('status', sa.String(32), True), ('description', sa.Text(), True),
          ('start_time', sa.Float(), True), ('end_time', sa.Float(), True), ('duration', sa.Float(), True)]
COLUMNS = {
    'run_fields': FIELDS + [('folder_id', sa.String(36), False)],
    'run_labels': [('node_id', sa.String(36), False), ('label', sa.String(255), False),
                   ('folder_id', sa.String(36), False)],
    'run_hparams': [('node_id', sa.String(36), False), ('key', sa.String(512), False),
                    ('folder_id', sa.String(36), False), ('kind', sa.String(8), False),
                    ('num', sa.Float(), True), ('text', sa.String(512), True)],
    'run_summaries': [('node_id', sa.String(36), False), ('type', sa.String(128), False),
                      ('name', sa.String(255), False), ('folder_id', sa.String(36), False),
                      *((c, sa.Float(), True) for c in ('last', 'min', 'max', 'mean')),
                      ('count', sa.BigInteger(), False),
                      *((c, sa.Float(), True) for c in ('last_step', 'min_step', 'max_step'))],
}
NEW_KEYS = {'run_fields': ('folder_id', 'node_id'),
            'run_labels': ('folder_id', 'node_id', 'label'),
            'run_hparams': ('folder_id', 'key', 'node_id'),
            'run_summaries': ('folder_id', 'type', 'name', 'node_id')}
OLD_KEYS = {'run_fields': ('node_id',),
            'run_labels': ('node_id', 'label'),
            'run_hparams': ('node_id', 'key'),
            'run_summaries': ('node_id', 'type', 'name')}


#: (name, columns, partial condition) of the search indexes that both layouts keep
SEARCH_INDEXES = {
    'run_fields': [],
    'run_labels': [('ix_run_labels_folder_label', ['folder_id', 'label', 'node_id'], None)],
    'run_hparams': [('ix_run_hparams_folder_num', ['folder_id', 'key', 'kind', 'num', 'node_id'],
                     'num IS NOT NULL'),
                    ('ix_run_hparams_folder_text', ['folder_id', 'key', 'text', 'node_id'], 'text IS NOT NULL')],
    'run_summaries': [],
}


def _create_index(name: str, table: str, columns: list[str], where: str | None) -> None:
    partial = {} if where is None else {'sqlite_where': sa.text(where), 'postgresql_where': sa.text(where)}
    op.create_index(name, table, columns, **partial)


def _rekey(table: str, key: tuple[str, ...], columns: list | None = None) -> None:
    """Give ``table`` the primary key ``key``; on SQLite rebuild it with ``columns`` (default
    ``COLUMNS[table]``; a ``folder_id`` it lacks comes from the Run's parent) clustered on that
    key (its indexes are dropped with it: the caller creates the ones it needs)."""
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        pk = sa.inspect(bind).get_pk_constraint(table)['name']
        op.drop_constraint(pk, table, type_='primary')
        op.create_primary_key(f'{table}_pkey', table, list(key))
        return
    columns = COLUMNS[table] if columns is None else columns
    new = f'_{table}_rekeyed'
    op.create_table(new, *(sa.Column(name, type_, nullable=nullable) for name, type_, nullable in columns),
                    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint(*key), sqlite_with_rowid=False)
    present = {c['name'] for c in sa.inspect(bind).get_columns(table)}
    names = ', '.join(f'"{name}"' for name, _, _ in columns)
    values = ', '.join(f'old."{name}"' if name in present else 'nodes.parent_id' for name, _, _ in columns)
    order = ', '.join(f'"{name}"' for name in key)
    parents = '' if 'folder_id' in present else ' JOIN nodes ON nodes.id = old.node_id'
    op.execute(f'INSERT INTO {new} ({names}) SELECT {values} FROM {table} AS old{parents} ORDER BY {order}')
    op.drop_table(table)
    op.rename_table(new, table)


def _add_folder_to_fields() -> None:
    """PostgreSQL: ``run_fields.folder_id`` from each Run's parent (SQLite fills it in ``_rekey``)."""
    op.add_column('run_fields', sa.Column('folder_id', sa.String(36), nullable=True))
    op.execute('UPDATE run_fields SET folder_id = nodes.parent_id FROM nodes WHERE nodes.id = run_fields.node_id')
    op.alter_column('run_fields', 'folder_id', existing_type=sa.String(36), nullable=False)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    op.drop_index('ix_run_summaries_folder_metric', table_name='run_summaries')  # the new key leads the same way
    if not sqlite:
        _add_folder_to_fields()
    for table, key in NEW_KEYS.items():
        _rekey(table, key)
        if sqlite:
            for name, columns, where in SEARCH_INDEXES[table]:
                _create_index(name, table, columns, where)
        op.create_index(f'ix_{table}_node', table, ['node_id'])
    # statistics for the rebuilt tables and the new column, before the first search plans
    op.execute('ANALYZE' if sqlite else 'ANALYZE run_fields, run_labels, run_hparams, run_summaries')


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for table, key in OLD_KEYS.items():
        op.drop_index(f'ix_{table}_node', table_name=table)
        _rekey(table, key, FIELDS if table == 'run_fields' else None)
        if sqlite:
            for name, columns, where in SEARCH_INDEXES[table]:
                _create_index(name, table, columns, where)
    op.create_index('ix_run_summaries_folder_metric', 'run_summaries', ['folder_id', 'type', 'name', 'node_id'])
    if sqlite:
        op.execute('ANALYZE')
    else:
        op.drop_column('run_fields', 'folder_id')
