"""``em.search_runs`` and ``em ls --filter`` / ``em export`` against a real server, on Runs
made by the SDK and uploaded by it (the whole path: Run.log → files → upload → indexing →
search)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from t9k import em
from t9k_em_core.search import InvalidQueryError, RunRecord

pytestmark = pytest.mark.timeout(300)

OPTS = ['Adam', 'SGD', 'Adam', 'SGD', 'Adam', 'AdamW']


@pytest.fixture
def swept(logged_in, folder):
    """Six Runs in ``folder/a`` and ``folder/a/b``: lr, optimizer, val accuracy rising to a peak."""
    names = []
    for i, opt in enumerate(OPTS):
        run = em.create_run(name=f'r{i}', labels=['sweep'] + (['odd'] if i % 2 else []),
                            hparams={'lr': 0.1 / (i + 1), 'opt': {'name': opt}, 'bn': i < 3})
        for step in range(30):
            run.log('val', {'acc': min(step, 20 + i) / 30, 'loss': 1 / (step + 1)}, step=step)
        run.log('train', {'loss': 2.0 - i / 10}, step=0)
        run.finish()
        run.upload(folder=f'{folder}/a' + ('/b' if i >= 4 else ''), make_folder=True)
        names.append(f'r{i}')
    return folder


def test_search_runs_list_and_pandas(swept):
    records = em.search_runs(f'{swept}/a', filter="hparams.opt.name = 'Adam' and val.acc.max > 0.6",
                             order_by=['val.acc.max desc'])
    assert [r.name for r in records] == ['r4', 'r2', 'r0']  # r4 sits in a/b (recursive)
    top = records[0]
    assert isinstance(top, RunRecord) and top.status == 'Complete' and top.labels == ['sweep']
    assert top.hparams == {'lr': 0.1 / 5, 'opt': {'name': 'Adam'}, 'bn': False}
    assert top.summaries['val']['acc'] == pytest.approx({
        'last': 24 / 30, 'min': 0.0, 'max': 24 / 30, 'mean': sum(min(s, 24) for s in range(30)) / 900,
        'count': 30, 'last_step': 29, 'min_step': 0, 'max_step': 24})
    assert top.duration is not None and top.duration >= 0
    assert [r.name for r in em.search_runs(f'{swept}/a', filter="hparams.opt.name = 'Adam'",
                                           recursive=False, order_by=['name'])] == ['r0', 'r2']
    assert len(em.search_runs(f'{swept}/a', max_results=4, order_by=['name'])) == 4

    frame = em.search_runs(f'{swept}/a', order_by=['hparams.lr'], output='pandas')
    assert list(frame['name']) == ['r5', 'r4', 'r3', 'r2', 'r1', 'r0']
    for column in ('hparams.lr', 'hparams.opt.name', 'hparams.bn', 'val.acc.max', 'val.loss.min',
                   'train.loss.last', 'status', 'start', 'end', 'duration', 'labels'):
        assert column in frame.columns, column
    assert frame['start'].dtype.kind == 'M'
    # group aggregates equal a pandas computation over the same frame
    by_opt = frame.groupby('hparams.opt.name')['val.acc.max'].agg(['count', 'mean', 'min', 'max'])
    from t9k_em_core import client
    groups = client.current()._json('GET', '/apis/v1/search/groups', params={
        'folder': f'/alice/{swept}/a', 'recursive': 'true', 'by': 'hparams.opt.name',
        'aggregate': 'val.acc.max'})['groups']
    for group in groups:
        expected = by_opt.loc[group['value']]
        assert group['count'] == expected['count']
        stats = group['aggregates']['val.acc.max']
        assert (stats['mean'], stats['min'], stats['max']) == pytest.approx(
            (expected['mean'], expected['min'], expected['max']))

    with pytest.raises(InvalidQueryError) as err:
        em.search_runs(f'{swept}/a', filter='hparams.lr <')
    assert err.value.position == 13 and 'ends too early' in str(err.value)
    with pytest.raises(ValueError, match='output must be'):
        em.search_runs(swept, output='arrow')


def em_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 't9k_em_core.cli', *args], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ))


def test_cli_ls_filter_and_export(swept, em_server, workdir: Path):
    saved = em_cli('login', '--host', em_server.url, '--api-key', em_server.api_key, '--save')
    assert saved.returncode == 0, saved.stderr
    done = em_cli('ls', f'{swept}/a', '--filter', 'labels contains "odd"', '--sort', 'val.acc.max desc',
                  '--columns', 'hparams.lr,hparams.opt.name')
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ['NAME', 'STATUS', 'START', 'DURATION', 'val.acc.max', 'hparams.lr',
                                'hparams.opt.name']
    assert [line.split()[0] for line in lines[1:]] == ['r5', 'r3', 'r1']
    assert lines[1].split()[-1] == 'AdamW' and '0.0166667' in lines[1]
    bad = em_cli('ls', f'{swept}/a', '--filter', 'name = ')
    assert bad.returncode == 1 and 'position 8' in bad.stderr

    out = workdir / 'runs.csv'
    done = em_cli('export', f'{swept}/a', '--filter', 'hparams.bn = true', '-o', str(out))
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert sorted(table['name']) == ['r0', 'r1', 'r2'] and 'val.acc.max' in table.columns
    parquet = workdir / 'history.parquet'
    done = em_cli('export', f'{swept}/a', '--filter', "name = 'r1'", '--history', '-o', str(parquet))
    assert done.returncode == 0, done.stderr
    history = pd.read_parquet(parquet)
    assert len(history) == 30 * 2 + 1
    acc = history[(history['type'] == 'val') & (history['metric'] == 'acc')].sort_values('step')
    assert list(acc['step']) == list(range(30)) and acc['value'].max() == pytest.approx(21 / 30)
