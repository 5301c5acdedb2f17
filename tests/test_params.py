"""``Params``: mapping + attribute access, validation, upload callback, ``parse`` dispatch."""

from __future__ import annotations

import argparse
import enum
import json
import pathlib

import pytest

import t9k_em_integrations  # noqa: F401 - registers the describers of parse (t9k.em imports it)
from t9k_em_core import params as params_module
from t9k_em_core.params import Params


@pytest.fixture
def uploads():
    return []


@pytest.fixture
def params(uploads):
    return Params(uploads.append, {'batch_size': 32})


def test_item_and_attribute_access(params, uploads):
    params['lr'] = 0.1
    params.epochs = 10
    assert params.batch_size == 32 and params['epochs'] == 10 and 'lr' in params
    assert dict(params) == {'batch_size': 32, 'lr': 0.1, 'epochs': 10}
    assert list(params.keys()) == ['batch_size', 'lr', 'epochs'] and len(params) == 3
    assert list(params.values()) == [32, 0.1, 10]
    assert list(params.items())[0] == ('batch_size', 32)
    del params.lr
    del params['epochs']
    assert params.as_dict() == {'batch_size': 32}
    with pytest.raises(AttributeError, match="No hyperparameter 'missing'"):
        params.missing
    with pytest.raises(KeyError):
        params['missing']
    assert uploads == [{'batch_size': 32, 'lr': 0.1},
                       {'batch_size': 32, 'lr': 0.1, 'epochs': 10},
                       {'batch_size': 32, 'epochs': 10},
                       {'batch_size': 32}]


def test_update_uploads_once_and_respects_override(params, uploads):
    params.update({'batch_size': 64, 'dropout': 0.5})
    assert params.as_dict() == {'batch_size': 64, 'dropout': 0.5}
    params.update({'batch_size': 128, 'epochs': 3}, override=False)
    assert params.as_dict() == {'batch_size': 64, 'dropout': 0.5, 'epochs': 3}
    params.update({'batch_size': 1}, override=False)  # nothing new: no upload
    assert len(uploads) == 2
    with pytest.raises(TypeError):  # new_params is required, as in the seed
        params.update()
    with pytest.raises(TypeError, match='new_params must be a dict, got list'):
        params.update([('a', 1)])


def test_non_json_value_is_refused_and_nothing_changes(params, uploads):
    with pytest.raises(TypeError, match="Hyperparameter 'opt' is not JSON-serialisable"):
        params['opt'] = object()
    with pytest.raises(TypeError, match="Hyperparameter 'fn'"):
        params.update({'ok': 1, 'fn': len})
    with pytest.raises(TypeError, match="'nested'"):
        params.nested = {'a': {1, 2}}
    assert params.as_dict() == {'batch_size': 32} and uploads == []
    with pytest.raises(TypeError, match="'bad'"):
        Params(uploads.append, {'bad': b'bytes'})


def test_tuples_become_lists_and_values_are_copied(params, uploads):
    betas = [0.9, 0.999]
    params['opt'] = {'name': 'Adam', 'betas': betas, 'shape': (1, (2, 3))}
    betas.append(1.0)  # the caller's later mutation does not leak in
    assert params['opt'] == {'name': 'Adam', 'betas': [0.9, 0.999], 'shape': [1, [2, 3]]}
    copy = params.as_dict()
    copy['opt']['name'] = 'SGD'
    assert params['opt']['name'] == 'Adam'
    assert uploads[-1]['opt']['shape'] == [1, [2, 3]]


def test_equality_and_repr(params):
    assert params == {'batch_size': 32}
    assert params == Params(lambda d: None, {'batch_size': 32})
    assert 'batch_size' in repr(params)


def test_parse_without_arguments_changes_nothing(params, uploads):
    params.parse()
    assert params.as_dict() == {'batch_size': 32} and uploads == []


def test_parse_records_each_api_under_distributed(params, uploads):
    from torch import nn
    params['distributed'] = {'tensorflow': {'kept': True}}
    params.parse(dist_torch_model=nn.DataParallel(nn.Linear(2, 2)))
    distributed = params['distributed']
    assert distributed['tensorflow'] == {'kept': True}
    assert distributed['torch']['wrapper'] == 'DataParallel'
    assert distributed['torch']['module'] == 'Linear'
    assert uploads[-1]['distributed'] == distributed


def test_parse_without_the_integrations_says_what_to_import(params, monkeypatch):
    monkeypatch.setattr(params_module, '_DESCRIBERS', {})
    with pytest.raises(RuntimeError, match='import t9k.em'):
        params.parse(dist_hvd=object())
    assert 'distributed' not in params


def test_parse_propagates_integration_errors(params):
    with pytest.raises(TypeError, match='torch.nn.Module'):
        params.parse(dist_torch_model='not a model')
    assert 'distributed' not in params


class _Color(enum.Enum):
    RED = 1


def _activation(x):
    return x


def test_plain_hparams_makes_framework_values_json_compatible(params, uploads):
    """What integrations take from framework objects (a Lightning module's ``hparams``, a Keras
    optimizer's config) becomes plain values that ``Params`` accepts."""
    np = pytest.importorskip('numpy')
    given = argparse.Namespace(
        lr=np.float32(0.5), sizes=(1, 2), tags={'a'}, weights=np.array([1, 2]), color=_Color.RED,
        path=pathlib.PurePosixPath('/data/x'), act=_activation, cls=Params, plain=None,
        nested={1: {'flag': True}}, other=object())
    plain = params_module.plain_hparams(given)
    assert json.loads(json.dumps(plain)) == plain
    assert plain['lr'] == 0.5 and plain['sizes'] == [1, 2] and plain['tags'] == ['a']
    assert plain['weights'] == [1, 2] and plain['color'] == 'RED' and plain['path'] == '/data/x'
    assert plain['act'] == f'{__name__}._activation'
    assert plain['cls'] == 't9k_em_core.params.Params'
    assert plain['nested'] == {'1': {'flag': True}} and plain['plain'] is None
    assert plain['other'].startswith('<object object at ')
    params.update(plain)
    assert uploads[-1]['color'] == 'RED'
