"""The built wheel: what lands in site-packages (real `pip wheel` of this checkout)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder → import name in site-packages (pyproject's package-dir)
PACKAGES = {'t9k_em_core': 't9k_em_core', 'integrations': 't9k_em_integrations',
            't9k_em_server': 't9k_em_server', 't9k': 't9k'}


@pytest.fixture(scope='module')
def wheel_names(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    shutil.rmtree(ROOT / 'build', ignore_errors=True)  # no stale copies from an earlier build
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', str(ROOT), '--no-deps',
                    '--no-build-isolation', '-q', '-w', str(out)], check=True,
                   capture_output=True, timeout=300)
    (wheel,) = out.glob('t9k_em-*.whl')
    return set(zipfile.ZipFile(wheel).namelist())


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
