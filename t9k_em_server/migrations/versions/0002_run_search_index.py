"""run search index: run fields, labels, flattened hparams, metric summaries, folder fields;
backfilled from what earlier uploads stored (parsed documents on the nodes, series segments).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 19:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def _node_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], ondelete='CASCADE')


def upgrade() -> None:
    op.create_table('run_fields',
    sa.Column('node_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('start_time', sa.Float(), nullable=True),
    sa.Column('end_time', sa.Float(), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    _node_fk(), sa.PrimaryKeyConstraint('node_id'))
    op.create_table('run_labels',
    sa.Column('node_id', sa.String(length=36), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=False),
    _node_fk(), sa.PrimaryKeyConstraint('node_id', 'label'))
    op.create_index('ix_run_labels_label', 'run_labels', ['label'])
    op.create_table('run_hparams',
    sa.Column('node_id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('num', sa.Float(), nullable=True),
    sa.Column('text', sa.String(length=512), nullable=True),
    _node_fk(), sa.PrimaryKeyConstraint('node_id', 'key'))
    op.create_index('ix_run_hparams_key_num', 'run_hparams', ['key', 'num'])
    op.create_index('ix_run_hparams_key_text', 'run_hparams', ['key', 'text'])
    op.create_table('run_summaries',
    sa.Column('node_id', sa.String(length=36), nullable=False),
    sa.Column('type', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    *(sa.Column(c, sa.Float(), nullable=True) for c in ('last', 'min', 'max', 'mean')),
    sa.Column('count', sa.BigInteger(), nullable=False),
    *(sa.Column(c, sa.Float(), nullable=True) for c in ('last_step', 'min_step', 'max_step')),
    _node_fk(), sa.PrimaryKeyConstraint('node_id', 'type', 'name'))
    op.create_index('ix_run_summaries_type_name', 'run_summaries', ['type', 'name'])
    op.create_table('folder_fields',
    sa.Column('folder_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('detail', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['folder_id'], ['nodes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('folder_id', 'kind', 'key', 'detail'))
    _backfill(op.get_bind())


def _backfill(conn: sa.engine.Connection) -> None:
    """Derive the new rows of every Run from what the database already holds: the parsed
    ``metadata.yaml``/``hyperparameters.yaml`` on the node, and the series segments of its
    metric objects. No blob is read. The rows are derived by today's code (``derived_of``,
    ``Series.summaries``) and written in this revision's table shapes (later revisions add
    columns and fill them themselves)."""
    import json

    from t9k_em_server.indexing import derived_of
    from t9k_em_server.metadata_store import SUMMARY_FIELDS, NodeView
    from t9k_em_server.series import decode_segments, metric_type_of

    nodes = sa.table('nodes', *(sa.column(c) for c in (
        'id', 'owner_id', 'parent_id', 'path', 'name', 'type', 'storage_type', 'labels',
        'description', 'extra', 'alt_name', 'meta', 'hparams', 'created_at', 'updated_at')))
    objects = sa.table('objects', sa.column('id'), sa.column('node_id'), sa.column('key'))
    index = sa.table('series_index', sa.column('object_id'))
    segments = sa.table('series_segments', sa.column('object_id'), sa.column('seq'), sa.column('data'))
    fields = sa.table('run_fields', *(sa.column(c) for c in (
        'node_id', 'status', 'description', 'start_time', 'end_time', 'duration')))
    labels = sa.table('run_labels', sa.column('node_id'), sa.column('label'))
    hparams = sa.table('run_hparams', *(sa.column(c) for c in ('node_id', 'key', 'kind', 'num', 'text')))
    summaries = sa.table('run_summaries', *(sa.column(c) for c in ('node_id', 'type', 'name') + SUMMARY_FIELDS))
    seen = sa.table('folder_fields', *(sa.column(c) for c in ('folder_id', 'kind', 'key', 'detail')))
    known: set[tuple] = set()

    def remember(rows: list[dict]) -> None:
        fresh = [r for r in rows if tuple(r.values()) not in known]
        known.update(tuple(r.values()) for r in fresh)
        if fresh:
            conn.execute(seen.insert(), fresh)

    runs = conn.execute(sa.select(nodes).where(nodes.c.type == 'Run')).mappings().all()
    for row in runs:
        node = NodeView(**{**row, 'labels': json.loads(row['labels'] or '[]'),
                           'meta': json.loads(row['meta']) if row['meta'] else None,
                           'hparams': json.loads(row['hparams']) if row['hparams'] else None})
        run = derived_of(node, 'meta', node.meta)
        if run is not None:
            conn.execute(fields.insert(), [dict(node_id=node.id, status=run.status,  # type: ignore[union-attr]
                                                description=run.description, start_time=run.start_time,  # type: ignore[union-attr]
                                                end_time=run.end_time, duration=run.duration)])  # type: ignore[union-attr]
            names = list(dict.fromkeys(run.labels))  # type: ignore[union-attr]
            if names:
                conn.execute(labels.insert(), [dict(node_id=node.id, label=n) for n in names])
        values = derived_of(node, 'hparams', node.hparams) or []
        if values:
            conn.execute(hparams.insert(), [dict(node_id=node.id, key=v.key, kind=v.kind, num=v.num,  # type: ignore[union-attr]
                                                 text=v.text) for v in values])  # type: ignore[union-attr]
            remember([dict(folder_id=node.parent_id, kind='hparam', key=v.key, detail=v.kind)  # type: ignore[union-attr]
                      for v in values])
        indexed = conn.execute(sa.select(objects.c.id, objects.c.key)
                               .join(index, index.c.object_id == objects.c.id)
                               .where(objects.c.node_id == node.id)).all()
        for object_id, key in indexed:
            metric_type = metric_type_of(key)
            if metric_type is None:
                continue
            data = conn.execute(sa.select(segments.c.data).where(segments.c.object_id == object_id)
                                .order_by(segments.c.seq)).scalars().all()
            found = decode_segments(list(data)).summaries()
            if found:
                conn.execute(summaries.insert(), [dict(node_id=node.id, type=metric_type, name=n,
                                                       **s.as_dict()) for n, s in found.items()])
                remember([dict(folder_id=node.parent_id, kind='metric', key=metric_type, detail=n)
                          for n in found])


def downgrade() -> None:
    for table in ('folder_fields', 'run_summaries', 'run_hparams', 'run_labels', 'run_fields'):
        op.drop_table(table)
