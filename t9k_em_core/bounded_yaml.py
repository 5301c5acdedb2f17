"""Parse a YAML document that someone else wrote, with its size bounded before anything is built.

YAML aliases let a few hundred bytes stand for billions of nodes ("billion laughs": ``l1: &l1
[*l0, *l0, …]`` over a few levels). PyYAML builds such a document cheaply, because an alias
shares the object it refers to, but anything that walks the result (``json.dumps``, a web page,
``copy.deepcopy``) expands it. So every document the server or the SDK reads from a file it did
not write goes through ``load``, which

1. refuses text longer than ``max_bytes`` characters;
2. composes the node graph with PyYAML's C parser (linear in the text; libyaml itself refuses
   nesting deeper than 1000);
3. walks that graph once, counting every node as often as aliases repeat it, and refuses a
   document whose expansion has more than ``max_nodes`` nodes, is nested deeper than
   ``max_depth``, or refers to itself;
4. only then builds Python objects (``SafeConstructor``: plain data, no Python tags).

Anything wrong is a ``yaml.YAMLError``: ``YamlLimitError`` for the limits, ``YamlContentError`` for
values the constructor cannot build (e.g. an integer of more than 4300 digits), PyYAML's own
errors for bad syntax. Callers catch ``yaml.YAMLError`` (``fileio.yaml_error_types()``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import yaml

_BASE = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on one document: characters of text, expanded nodes, nesting depth."""

    max_bytes: int = 64 << 20
    max_nodes: int = 1_000_000
    max_depth: int = 100

    def scaled_to(self, text_length: int) -> 'YamlLimits':
        """These limits with ``max_nodes`` at least ``text_length``: a document without aliases
        has fewer nodes than characters, so this admits any plain document of that length (a
        long metric file) while aliases still cannot expand it beyond its own size."""
        if text_length <= self.max_nodes:
            return self
        return YamlLimits(self.max_bytes, text_length, self.max_depth)


#: the default: what the SDK reads from run and artifact folders
DOCUMENT = YamlLimits()


class YamlLimitError(yaml.YAMLError):
    """The document is larger, deeper or more expanded than the limits allow."""


class YamlContentError(yaml.YAMLError):
    """The document parsed, but a value in it cannot be built (e.g. an over-long integer)."""


def _check(root: yaml.Node, limits: YamlLimits) -> None:
    """Raise ``YamlLimitError`` unless the tree that ``root`` expands to is within ``limits``.

    Iterative post-order walk over the node graph; a node reached through several aliases is
    walked once, its (size, depth) remembered and counted at every place it appears.
    """
    done: Dict[int, Tuple[int, int]] = {}
    open_: set = set()
    stack: List[Tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in done:
            continue
        children = _children(node)
        if not children_done:
            if key in open_:
                raise YamlLimitError('YAML document refers to itself (recursive alias)')
            open_.add(key)
            stack.append((node, True))
            for child in children:
                if id(child) in open_:
                    raise YamlLimitError('YAML document refers to itself (recursive alias)')
                if id(child) not in done:
                    stack.append((child, False))
            continue
        size, depth = 1, 0
        for child in children:
            child_size, child_depth = done[id(child)]
            size += child_size
            depth = max(depth, child_depth)
        depth += 1
        if size > limits.max_nodes:
            raise YamlLimitError(f'YAML document expands to more than {limits.max_nodes} nodes '
                                 '(aliases count once per use)')
        if depth > limits.max_depth:
            raise YamlLimitError(f'YAML document nested deeper than {limits.max_depth} levels')
        open_.discard(key)
        done[key] = (size, depth)


def _children(node: yaml.Node) -> List[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


class _BoundedLoader(_BASE):  # type: ignore[misc, valid-type]
    """The safe loader, checking the composed graph against ``limits`` before constructing."""

    limits: YamlLimits = DOCUMENT

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check(node, self.limits)
        return self.construct_document(node)


def load(text: Any, limits: Optional[YamlLimits] = None) -> Any:
    """The document in ``text`` (``str`` or UTF-8 ``bytes``), within ``limits`` (``DOCUMENT``).

    Raises ``yaml.YAMLError`` (``YamlLimitError`` over a limit) naming the problem.
    """
    limits = limits or DOCUMENT
    if len(text) > limits.max_bytes:
        raise YamlLimitError(f'YAML document larger than {limits.max_bytes} bytes')
    loader = _BoundedLoader(text)
    loader.limits = limits
    try:
        return loader.get_single_data()
    except yaml.YAMLError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise YamlContentError(f'YAML value cannot be read: {exc}') from None
    finally:
        loader.dispose()
