"""Every public function and method documented in the seed (t9k 0.6.0b0's API reference) has the
seed's signature here: the same parameter names, in the same order, with the same defaults.
Parameters the project adds come after them and are keyword-only."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest

from support import seed_api

SIGNATURES = seed_api.signatures()
KINDS = {'': inspect.Parameter.POSITIONAL_OR_KEYWORD, '*': inspect.Parameter.VAR_POSITIONAL,
         '**': inspect.Parameter.VAR_KEYWORD}


def _resolve(qualname: str) -> Any:
    """The object users reach by ``qualname`` (``t9k.em.run.Run.log``), imported as they would."""
    parts = qualname.split('.')
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(qualname)


def _described(params) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in params]


def test_the_repository_copy_of_the_seed_is_the_seed():
    if not seed_api.SHARED_SEED_PATH.exists():
        pytest.skip(f'no {seed_api.SHARED_SEED_PATH} beside this checkout')
    assert seed_api.SEED_PATH.read_bytes() == seed_api.SHARED_SEED_PATH.read_bytes()


def test_the_seed_documents_the_public_api():
    """The parser finds what the seed documents (so an empty parse cannot pass the test below)."""
    names = {s.qualname for s in SIGNATURES}
    assert {'t9k.em.create_run', 't9k.em.load_run', 't9k.em.create_artifact', 't9k.em.load_artifact',
            't9k.em.login', 't9k.em.logout', 't9k.em.upload', 't9k.em.run.Run', 't9k.em.run.Run.log',
            't9k.em.run.Run.finish', 't9k.em.artifact.Artifact.add_dir', 't9k.em.containers.Params',
            't9k.em.containers.Params.update'} <= names
    assert len(SIGNATURES) == 29


@pytest.mark.parametrize('seed', SIGNATURES, ids=[s.qualname for s in SIGNATURES])
def test_signature_matches_the_seed(seed: seed_api.SeedSignature):
    ours = list(inspect.signature(_resolve(seed.qualname)).parameters.values())
    if ours and ours[0].name == 'self' and not (seed.params and seed.params[0].name == 'self'):
        ours = ours[1:]  # the seed prints a decorated method (``finish(*args, **kwargs)``) without self
    names = {p.name for p in seed.params}
    added = [p for p in ours if p.name not in names]
    expected = [(p.name, KINDS[p.star], inspect.Parameter.empty if p.default is seed_api.NO_DEFAULT
                 else p.default) for p in seed.params]
    actual = _described(p for p in ours if p.name in names)
    assert actual == expected, f'{seed.qualname}: parameters differ from the seed'
    # ``==`` takes True for 1: the defaults' types must be the seed's too.
    assert [type(d) for _, _, d in actual] == [type(d) for _, _, d in expected]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in added), (
        f'{seed.qualname}: parameters the seed does not have must be keyword-only: '
        f'{[p.name for p in added if p.kind is not inspect.Parameter.KEYWORD_ONLY]}')
    if added:  # after the seed's own parameters, apart from a trailing ``**kwargs``
        positions = {p.name: i for i, p in enumerate(ours)}
        last_seed = max((positions[p.name] for p in seed.params if p.star != '**'), default=-1)
        assert all(positions[p.name] > last_seed for p in added), seed.qualname
