"""Reads the public API reference of t9k 0.6.0b0 (the seed, ``../shared/seed/t9k-em-api.txt``; the
copy ``t9k-em-api-0.6.0b0.txt`` beside this module travels with the repository, so a clean clone in
CI has it): its documented signatures and its code examples, so that tests hold our API to the
seed's text itself.

The file is plain text (a rendered pdoc page): a heading line per object (``t9k.em.run.Run``), a
signature line per function or method (``log(self, type: str, ...) ‑> None``, right after a line
holding the bare name for methods), prose, and code examples as indented-free paragraphs.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED_PATH = Path(__file__).with_name('t9k-em-api-0.6.0b0.txt')
#: the project's reference copy, beside the repository (absent in a clean clone)
SHARED_SEED_PATH = Path(__file__).resolve().parents[3] / 'shared' / 'seed' / 't9k-em-api.txt'

_HEADING = re.compile(r'^t9k\.em(?:\.\w+)*$')
_SIGNATURE = re.compile(r'^(\w+)\((.*)\)(?:\s+\u2011>\s+(.+))?$')
NO_DEFAULT = object()


@dataclass(frozen=True)
class SeedParam:
    """One parameter of a documented signature: ``*args`` has ``star='*'``, ``**kwargs`` ``'**'``."""

    name: str
    default: Any = NO_DEFAULT
    star: str = ''


@dataclass(frozen=True)
class SeedSignature:
    """A documented callable: ``qualname`` is the dotted path users import it by
    (``t9k.em.run.Run.log``, ``t9k.em.create_run``; a class's own entry is its constructor)."""

    qualname: str
    params: tuple[SeedParam, ...]


@dataclass(frozen=True)
class SeedExample:
    """A code example: ``code`` exactly as the seed prints it; ``intro`` the prose line before it
    (``Basic usage:``); ``section`` the heading of the object it documents."""

    section: str
    intro: str
    code: str


def seed_text() -> str:
    return SEED_PATH.read_text(encoding='utf-8')


def _split_top_level(text: str, sep: str = ',') -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        if ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(''.join(current))
            current = []
        else:
            current.append(ch)
    if ''.join(current).strip():
        parts.append(''.join(current))
    return [p.strip() for p in parts]


def _param(text: str) -> SeedParam:
    star = '**' if text.startswith('**') else '*' if text.startswith('*') else ''
    text = text[len(star):]
    name_and_type, default = text, NO_DEFAULT
    pieces = _split_top_level(text, '=')
    if len(pieces) == 2:
        name_and_type, default = pieces[0], ast.literal_eval(pieces[1])
    return SeedParam(name_and_type.split(':')[0].strip(), default, star)


def signatures(text: str | None = None) -> list[SeedSignature]:
    """Every documented signature, in the order of the seed."""
    lines = (seed_text() if text is None else text).splitlines()
    found, obj, previous = [], '', ''
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if _HEADING.match(line):
            obj = line
        else:
            match = _SIGNATURE.match(line)
            if match and obj and match[1] in (obj.rsplit('.', 1)[-1], previous):
                name = obj if match[1] == obj.rsplit('.', 1)[-1] else f'{obj}.{match[1]}'
                found.append(SeedSignature(name, tuple(_param(p) for p in _split_top_level(match[2]))))
        previous = line
    return found


def _paragraphs(text: str) -> list[list[str]]:
    paragraphs, current = [], []
    for line in text.splitlines():
        if line.strip():
            current.append(line.rstrip())
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    return paragraphs


def _is_code(paragraph: list[str], previous: str) -> bool:
    source = '\n'.join(paragraph)
    if _HEADING.match(source) or _SIGNATURE.match(paragraph[0]) and paragraph[0].startswith(previous + '('):
        return False
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    # Prose never parses; a bare name (a heading such as ``add_dir``) does, and is no example.
    return any(isinstance(node, (ast.Call, ast.Assign, ast.Import, ast.ImportFrom))
               for node in ast.walk(tree))


def examples(text: str | None = None) -> list[SeedExample]:
    """Every code example: consecutive code paragraphs form one example (blank lines kept)."""
    found: list[SeedExample] = []
    section, intro, previous, code = '', '', '', []
    for paragraph in _paragraphs(seed_text() if text is None else text):
        if _is_code(paragraph, previous):
            code.append('\n'.join(paragraph))
        else:
            if code:
                found.append(SeedExample(section, intro, '\n\n'.join(code) + '\n'))
                code = []
            first = paragraph[0].strip()
            if _HEADING.match(first):
                section = first
            intro = paragraph[-1].strip()
        previous = paragraph[-1].strip()
    if code:
        found.append(SeedExample(section, intro, '\n\n'.join(code) + '\n'))
    return found


def yaml_block_after(intro_prefix: str, text: str | None = None) -> str:
    """The paragraph that follows the prose paragraph starting with ``intro_prefix`` (the seed's
    sample config file, for instance)."""
    paragraphs = _paragraphs(seed_text() if text is None else text)
    for i, paragraph in enumerate(paragraphs[:-1]):
        if paragraph[0].strip().startswith(intro_prefix):
            return '\n'.join(paragraphs[i + 1]) + '\n'
    raise LookupError(f'no paragraph starts with {intro_prefix!r} in the seed')
