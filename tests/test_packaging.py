"""The built wheel: what lands in site-packages (real `pip wheel` of this checkout)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder → import name in site-packages (pyproject's package-dir)
PACKAGES = {'t9k_em_core': 't9k_em_core', 'integrations': 't9k_em_integrations',
            't9k_em_server': 't9k_em_server', 't9k': 't9k'}


def _build_wheel(out: Path, **env: str) -> set:
    """The file names in a wheel of this checkout, built with ``env`` added to the environment."""
    shutil.rmtree(ROOT / 'build', ignore_errors=True)  # no stale copies from an earlier build
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', str(ROOT), '--no-deps',
                    '--no-build-isolation', '-q', '-w', str(out)], check=True,
                   capture_output=True, timeout=300, env={**os.environ, **env})
    (wheel,) = out.glob('t9k_em-*.whl')
    return set(zipfile.ZipFile(wheel).namelist())


@pytest.fixture(scope='module')
def wheel_names(tmp_path_factory):
    return _build_wheel(tmp_path_factory.mktemp('wheel'))


@pytest.mark.timeout(300)
def test_only_project_names_land_in_site_packages(wheel_names):
    top = {name.split('/')[0] for name in wheel_names if '.dist-info/' not in name}
    assert top == set(PACKAGES.values())


@pytest.mark.timeout(300)
def test_every_module_and_server_asset_is_in_the_wheel(wheel_names):
    missing = []
    for folder, name in PACKAGES.items():
        for path in (ROOT / folder).rglob('*'):
            relative = path.relative_to(ROOT / folder).as_posix()
            if '__pycache__' in relative or not path.is_file():
                continue
            wanted = path.suffix == '.py' or (folder == 't9k_em_server' and relative.startswith(
                ('static/', 'templates/')) or relative == 'alembic.ini')
            if wanted and f'{name}/{relative}' not in wheel_names:
                missing.append(f'{name}/{relative}')
    assert not missing, f'not packaged: {missing}'


@pytest.mark.timeout(300)
def test_c_accelerator_is_built(wheel_names):
    """The optional C extension of ``Run.log`` is compiled into the wheel, and the development
    install imports it (the setting the benchmarks measure)."""
    assert {name for name in wheel_names if name.startswith('t9k_em_core/_speedups.')} == \
        {f't9k_em_core/_speedups{sysconfig.get_config_var("EXT_SUFFIX")}'}  # not the .c
    from t9k_em_core import metric_file, metrics
    assert metric_file._interleave.__module__ == metrics._pack.__module__ == 't9k_em_core._speedups'


@pytest.mark.timeout(300)
def test_without_a_c_compiler_the_wheel_is_built_without_the_accelerator(tmp_path, wheel_names):
    names = _build_wheel(tmp_path, CC='false')  # a compiler that always fails
    assert not any(name.startswith('t9k_em_core/_speedups.') for name in names)
    assert names == {n for n in wheel_names if not n.startswith('t9k_em_core/_speedups.')} | \
        {n for n in names if '.dist-info/' in n}  # every other file is still there


@pytest.mark.timeout(120)
def test_without_the_c_extension_run_log_works_in_python(tmp_path):
    """A process where ``t9k_em_core._speedups`` cannot be imported (as where it was not built)
    uses the Python twins, and its Run's metrics are all written."""
    code = textwrap.dedent("""
        import sys

        class NotBuilt:
            def find_spec(self, name, path=None, target=None):
                if name == 't9k_em_core._speedups':
                    raise ImportError('not built')

        sys.meta_path.insert(0, NotBuilt())
        from t9k import em
        from t9k_em_core import metric_file, metrics
        assert metrics._pack is metrics._pack_py
        assert metric_file._interleave is metric_file._interleave_py
        run = em.create_run(name='pure-python')
        for step in range(2000):
            run.log('train', {'loss': step / 3}, step=step)
        run.finish()
        print([e['value']['loss'] for e in run.metrics['train']] == [s / 3 for s in range(2000)])
    """)
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=100,
                         env={**os.environ, 'EM_RUN_PARENT_DIR': str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['True']
