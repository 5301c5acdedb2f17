"""``Params``: the hyperparameters of a Run (a ``MutableMapping`` with attribute access)."""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

# ``Params.parse`` argument → (key under params['distributed'], describe(obj) -> dict)
_DESCRIBERS: Dict[str, Tuple[str, Callable[[Any], Dict[str, Any]]]] = {}


def register_describer(argument: str, api: str, describe: Callable[[Any], Dict[str, Any]]) -> None:
    """Makes ``Params.parse(<argument>=obj)`` record ``describe(obj)`` under
    ``params['distributed'][api]``. The integrations package (``t9k_em_integrations``, imported
    by ``t9k.em``) registers ``dist_tf_strategy``, ``dist_torch_model`` and ``dist_hvd``."""
    _DESCRIBERS[argument] = (api, describe)


def normalize_value(key: Any, value: Any) -> Any:
    """A JSON-compatible copy of a hyperparameter value (tuples become lists).

    Raises ``TypeError`` naming ``key`` when ``value`` is not JSON-serialisable.
    """
    try:
        json.dumps(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f'Hyperparameter {key!r} is not JSON-serialisable: {e}') from None
    return _plain(value)


def plain_hparams(value: Any) -> Any:
    """A JSON-compatible copy of hyperparameters taken from framework objects (a Lightning
    module's ``hparams``, a Keras optimizer's config), for :meth:`Params.update`.

    Namespaces and mappings become dicts (nested ones stay nested, keys become strings),
    sequences and sets become lists, tensors and NumPy values numbers (or lists), enums their
    name, paths strings, classes and functions their qualified name, anything else ``str()``.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    argparse = sys.modules.get('argparse')  # a Namespace means argparse is imported: no import here
    if argparse is not None and isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {str(k): plain_hparams(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain_hparams(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, type) and callable(getattr(value, 'tolist', None)):
        return plain_hparams(value.tolist())  # torch.Tensor, numpy arrays and scalars
    if callable(value):
        qualname = getattr(value, '__qualname__', None) or type(value).__qualname__
        module = getattr(value, '__module__', None)
        return f'{module}.{qualname}' if module else qualname
    return str(value)


def _plain(value: Any) -> Any:
    """``value`` (JSON-serialisable already) with tuples turned into lists; keys are kept."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class Params(MutableMapping):
    """Container of the hyperparameters of a Run.

    Set them once with :meth:`update` before building the model, or like items of a dict
    (``run.params['batch_size'] = 32``) or attributes (``run.params.epochs = 10``).
    Values must be JSON-serialisable (``TypeError`` naming the key otherwise, nothing changed);
    tuples are stored as lists. ``upload(data)`` is called with a plain ``dict`` copy after
    every change; a Run passes a function that rewrites ``hyperparameters.yaml``.

    Args:
        upload: Called with the hyperparameters (a plain dict) every time they change.
        init_hparams: Initial hyperparameters.
    """

    def __init__(self, upload: Callable[[Dict[str, Any]], Any],
                 init_hparams: Optional[Dict[str, Any]] = None) -> None:
        object.__setattr__(self, '_upload', upload)
        object.__setattr__(self, '_data', {})
        if init_hparams is not None and not isinstance(init_hparams, Mapping):
            raise TypeError(f'Hyperparameters must be a dict, got {type(init_hparams).__name__}')
        if init_hparams:
            self._data.update(self._normalized(init_hparams))

    # --- mapping protocol ---------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = normalize_value(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changed()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __repr__(self) -> str:
        return f'Params({self._data!r})'

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Params):
            return self._data == other._data
        return isinstance(other, dict) and self._data == other

    __hash__ = None  # type: ignore[assignment]

    # --- attribute access ---------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith('__'):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f'No hyperparameter {name!r}') from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith('_'):
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f'No hyperparameter {name!r}') from None

    # --- seed API -----------------------------------------------------------------------------

    def keys(self):
        """D.keys() -> a set-like object providing a view on D's keys."""
        return self._data.keys()

    def items(self):
        """D.items() -> a set-like object providing a view on D's items."""
        return self._data.items()

    def values(self):
        """D.values() -> an object providing a view on D's values."""
        return self._data.values()

    def as_dict(self) -> Dict[str, Any]:
        """A deep copy of the hyperparameters as a plain dict."""
        return _copy(self._data)

    def update(self, new_params: Dict[str, Any], override: bool = True) -> None:  # type: ignore[override]
        """Updates with new params (one ``upload`` for the whole update).

        Args:
            new_params: New params to be updated with.
            override: Whether to override current params; if False, existing keys are kept.

        Raises:
            TypeError: ``new_params`` is not a dict, or a value is not JSON-serialisable
                (the key is named; nothing changes).
        """
        if not isinstance(new_params, Mapping):
            raise TypeError(f'new_params must be a dict, got {type(new_params).__name__}')
        normalized = self._normalized(new_params)
        if not override:
            normalized = {k: v for k, v in normalized.items() if k not in self._data}
        if normalized:
            self._data.update(normalized)
            self._changed()

    def parse(self, dist_tf_strategy: Any = None, dist_torch_model: Any = None,
              dist_hvd: Any = None) -> None:
        """Parses hyperparameters from objects of distributed-training frameworks.

        Each given object is described by the hook its integration registered
        (:func:`register_describer`; the integration and its framework are imported only then)
        and recorded under ``params['distributed'][api]`` with ``api`` one of ``tensorflow``,
        ``torch``, ``horovod``.

        Args:
            dist_tf_strategy: TensorFlow distribution strategy if ``tf.distribute`` is used.
            dist_torch_model: PyTorch model wrapped with DP or DDP if ``torch.distributed`` is used.
            dist_hvd: Horovod module used (e.g. ``horovod.keras``, ``horovod.torch``).
        """
        given = {'dist_tf_strategy': dist_tf_strategy, 'dist_torch_model': dist_torch_model,
                 'dist_hvd': dist_hvd}
        described = {}
        for arg, value in given.items():
            if value is None:
                continue
            if arg not in _DESCRIBERS:
                raise RuntimeError(f'Params.parse({arg}=...) needs the framework integrations: '
                                   'import t9k.em (or t9k_em_integrations) first')
            api, describe = _DESCRIBERS[arg]
            described[api] = normalize_value(f'distributed.{api}', describe(value))
        if not described:
            return
        distributed = dict(self._data.get('distributed') or {})
        distributed.update(described)
        self['distributed'] = distributed

    # --- internals ----------------------------------------------------------------------------

    @staticmethod
    def _normalized(new_params: Dict[str, Any]) -> Dict[str, Any]:
        return {k: normalize_value(k, v) for k, v in new_params.items()}

    def _changed(self) -> None:
        self._upload(self.as_dict())
