"""Capture of ``platform.yaml`` (host, OS, Python, loaded ML packages) and ``git.yaml``.

``git.yaml`` describes the repository of the user's entry script (``__main__.__file__``, else
``sys.argv[0]``, else the working directory), unlike 0.6.0b0 which described its own install
location. Each field is ``None`` when unavailable (no git, not a repository, no commit yet).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional, Tuple

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


def _status(where: str) -> Optional[List[str]]:
    """Lines of ``git status --porcelain=v2 --branch`` in ``where``; None outside a repository,
    without git, or after :data:`GIT_TIMEOUT`."""
    import subprocess

    try:
        proc = subprocess.run(['git', '-C', where, 'status', '--porcelain=v2', '--branch',
                               '--untracked-files=no'], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                              timeout=GIT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.splitlines() if proc.returncode == 0 else None


def _work_tree(where: str) -> Optional[Tuple[str, str]]:
    """``(top-level directory, git directory)`` of the repository holding ``where``: the nearest
    ancestor with a ``.git`` directory, or a ``.git`` file (``gitdir: …``) as in worktrees and
    submodules."""
    path = os.path.abspath(where)
    while True:
        dot_git = os.path.join(path, '.git')
        if os.path.isdir(dot_git):
            return path, dot_git
        if os.path.isfile(dot_git):
            with open(dot_git, encoding='utf-8') as f:
                line = f.readline().strip()
            if line.startswith('gitdir:'):
                return path, os.path.normpath(os.path.join(path, line[len('gitdir:'):].strip()))
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def _first_remote_url(git_dir: str) -> Optional[str]:
    """URL of the first ``[remote "…"]`` of the repository's config (worktrees share the main
    repository's config, named by ``commondir``)."""
    import configparser

    common = os.path.join(git_dir, 'commondir')
    if os.path.isfile(common):
        with open(common, encoding='utf-8') as f:
            git_dir = os.path.normpath(os.path.join(git_dir, f.read().strip()))
    config = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        config.read(os.path.join(git_dir, 'config'), encoding='utf-8')
    except configparser.Error:
        return None
    for section in config.sections():
        if section.startswith('remote "') and config.has_option(section, 'url'):
            return config.get(section, 'url').strip('"')
    return None


def unknown_git(entrypoint: Optional[str] = None) -> Dict[str, Any]:
    """``git.yaml`` content with every field but the entry script unknown (``None``)."""
    return {'repo_path': None, 'remote_url': None, 'branch': None, 'commit': None,
            'is_dirty': None, 'entrypoint': entrypoint or entry_script()}


def capture_git(entrypoint: Optional[str] = None) -> Dict[str, Any]:
    """Content of ``git.yaml``: the repository of ``entrypoint`` (default: the entry script).

    One ``git status`` process gives the commit, branch and dirtiness; the top-level directory
    and the remote are read from the repository's files.
    """
    entrypoint = entrypoint or entry_script()
    info = unknown_git(entrypoint)
    where = os.path.dirname(entrypoint) if entrypoint else os.getcwd()
    tree = _work_tree(where)
    if tree is None:  # no git process outside a repository
        return info
    status = _status(where)
    if status is None:
        return info
    info['repo_path'], git_dir = tree
    info['remote_url'] = _first_remote_url(git_dir)
    headers = dict(line[2:].split(' ', 1) for line in status if line.startswith('# '))
    if headers.get('branch.oid', '(initial)') != '(initial)':
        info['commit'] = headers['branch.oid']
    if headers.get('branch.head', '(detached)') != '(detached)':
        info['branch'] = headers['branch.head']
    info['is_dirty'] = any(not line.startswith('#') for line in status)
    return info
