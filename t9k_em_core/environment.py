"""Capture of ``platform.yaml`` (host, OS, Python, loaded ML packages) and ``git.yaml``.

``git.yaml`` describes the repository of the user's entry script (``__main__.__file__``, else
``sys.argv[0]``, else the working directory), unlike 0.6.0b0 which described its own install
location. Each field is ``None`` when unavailable (no git, not a repository, no commit yet).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Optional

if TYPE_CHECKING:
    import subprocess

from t9k_em_core import __version__

GIT_TIMEOUT = 5.0
"""Seconds each ``git`` command may take."""

# module name in sys.modules → package name written under ``pypkgs``
_TRACKED_PACKAGES = (
    ('t9k_em_core', 't9k-em'),
    ('tensorflow', 'tensorflow'),
    ('keras', 'keras'),
    ('torch', 'torch'),
    ('torchvision', 'torchvision'),
    ('lightning', 'lightning'),
    ('pytorch_lightning', 'pytorch-lightning'),
    ('horovod', 'horovod'),
    ('deepspeed', 'deepspeed'),
    ('colossalai', 'colossalai'),
    ('transformers', 'transformers'),
    ('jax', 'jax'),
    ('numpy', 'numpy'),
    ('sklearn', 'scikit-learn'),
)

# display name written to ``framework`` (0.6.0b0's set, plus DeepSpeed which it misspelled)
_FRAMEWORKS = (
    ('colossalai', 'ColossalAI'),
    ('deepspeed', 'DeepSpeed'),
    ('horovod', 'Horovod'),
    ('tensorflow', 'TensorFlow'),
    ('torch', 'PyTorch'),
)


def _version_of(module_name: str) -> Optional[str]:
    if module_name == 't9k_em_core':
        return __version__
    module = sys.modules.get(module_name)
    version = getattr(module, '__version__', None)
    return str(version) if version is not None else None


def capture_platform() -> Dict[str, Any]:
    """Content of ``platform.yaml`` for this process."""
    import platform
    import socket

    pypkgs = {}
    for module_name, package in _TRACKED_PACKAGES:
        if module_name == 't9k_em_core' or module_name in sys.modules:
            version = _version_of(module_name)
            if version is not None:
                pypkgs[package] = version
    framework = ', '.join(name for module, name in _FRAMEWORKS if module in sys.modules)
    return {
        'hostname': socket.gethostname(),
        'os': platform.platform(),
        'python': platform.python_version(),
        'pypkgs': pypkgs,
        'framework': framework,
    }


def entry_script() -> Optional[str]:
    """Absolute path of the script this process runs, or None (interactive, ``-c``)."""
    main = sys.modules.get('__main__')
    candidates = [getattr(main, '__file__', None)]
    if sys.argv and sys.argv[0] not in ('', '-c', '-m'):
        candidates.append(sys.argv[0])
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return os.path.abspath(candidate)
    return None


def _git(cwd: str, *args: str) -> 'subprocess.Popen':
    import subprocess

    return subprocess.Popen(['git', '-C', cwd, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)


def _output(proc: 'subprocess.Popen') -> Optional[List[str]]:
    import subprocess

    try:
        out, _ = proc.communicate(timeout=GIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    if proc.returncode != 0:
        return None
    return out.splitlines()


def capture_git(entrypoint: Optional[str] = None) -> Dict[str, Any]:
    """Content of ``git.yaml``: the repository of ``entrypoint`` (default: the entry script)."""
    entrypoint = entrypoint or entry_script()
    info: Dict[str, Any] = {'repo_path': None, 'remote_url': None, 'branch': None,
                            'commit': None, 'is_dirty': None, 'entrypoint': entrypoint}
    where = os.path.dirname(entrypoint) if entrypoint else os.getcwd()
    try:
        procs = {
            'top': _git(where, 'rev-parse', '--show-toplevel'),
            'branch': _git(where, 'symbolic-ref', '--short', '-q', 'HEAD'),
            'commit': _git(where, 'rev-parse', '--verify', '-q', 'HEAD'),
            'remote': _git(where, 'config', '--get-regexp', r'^remote\..*\.url$'),
            'dirty': _git(where, 'status', '--porcelain', '--untracked-files=no'),
        }
    except OSError:  # git is not installed
        return info
    out = {key: _output(proc) for key, proc in procs.items()}
    if not out['top']:
        return info
    info['repo_path'] = out['top'][0]
    if out['remote']:
        info['remote_url'] = out['remote'][0].split(' ', 1)[-1]
    if out['commit']:
        info['commit'] = out['commit'][0]
    if out['branch']:
        info['branch'] = out['branch'][0]
    if out['dirty'] is not None:
        info['is_dirty'] = bool(out['dirty'])
    return info
