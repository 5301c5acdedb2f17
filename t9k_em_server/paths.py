"""Node paths, object keys and the name rule, parsed and checked in one place.

A node path is ``/<user>/<name>/<name>…``. An object path is a node path followed by the object's
key inside that node (``/alice/proj/mnist/metrics/train.yaml``). Every name follows the name rule
of the local layout (spec local-layout §2.1), or is an alternative name built from such a name
(``<name>_<yymmdd>_<HHMMSS>_<6 chars>``), because the 0.6.0b0 client creates nodes named that way
under conflict strategy ``new``.
"""
from __future__ import annotations

import re

from t9k_em_core.naming import NAME_RE

from .errors import ApiError

_ALT_SUFFIX = re.compile(r"_[0-9]{6}_[0-9]{6}_[a-z0-9]{6}")

MAX_PATH_CHARS = 1024
MAX_KEY_CHARS = 1024


def is_valid_name(name: str) -> bool:
    """True when ``name`` may name a node (the SDK's name rule, or an alternative name)."""
    if NAME_RE.fullmatch(name):
        return True
    base = name[:-21]
    return len(name) > 21 and bool(_ALT_SUFFIX.fullmatch(name, len(base))) and bool(NAME_RE.fullmatch(base))


def check_name(name: object, what: str = "node") -> str:
    """Return ``name`` if it is a valid node name, else raise a 400 naming the problem."""
    if not isinstance(name, str) or not is_valid_name(name):
        raise ApiError(400, f"invalid {what} name {name!r}: use 1-40 characters [A-Za-z0-9_-], "
                            "starting and ending with a letter or digit")
    return name


def parse_node_path(path: object) -> list[str]:
    """Split an absolute node path into its names; a trailing ``/`` is tolerated."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) > MAX_PATH_CHARS:
        raise ApiError(400, f"invalid node path {str(path)[:200]!r}: must be absolute")
    names = path.rstrip("/").split("/")[1:]
    if not names:
        raise ApiError(400, "invalid node path '/': no user")
    for name in names:
        check_name(name)
    return names


def join_path(names: list[str]) -> str:
    """The node path of a list of names."""
    return "/" + "/".join(names)


#: characters that reorder displayed text (bidi embeddings, overrides, isolates, marks): a key
#: holding one can show as another name ("gpj.exe" shown as "exe.jpg")
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


def normalise_key(key: str) -> str:
    """Normalise an object key (``a//b/./c`` → ``a/b/c``); refuse ``..``, absolute keys,
    backslashes, control and bidi characters, text that is not valid Unicode (a lone surrogate,
    as an undecodable tar member name becomes), and names of only spaces.

    The one check of object keys: single uploads, multipart and batch members all call it.
    Raises a 400 ``ApiError`` naming the problem.
    """
    if not key:
        raise ApiError(400, "invalid object key: empty")
    if len(key) > MAX_KEY_CHARS:
        raise ApiError(400, f"invalid object key: longer than {MAX_KEY_CHARS} characters")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"invalid object key {key!r}: not valid UTF-8") from None
    if "\\" in key:
        raise ApiError(400, f"invalid object key {key!r}: backslash not allowed")
    if key.startswith("/"):
        raise ApiError(400, f"invalid object key {key!r}: absolute keys not allowed")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise ApiError(400, f"invalid object key {key!r}: control characters not allowed")
    if not BIDI_CONTROLS.isdisjoint(key):
        raise ApiError(400, f"invalid object key {key!r}: bidirectional control characters "
                            "(e.g. right-to-left override) not allowed")
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ApiError(400, f"invalid object key {key!r}: '..' not allowed")
    if not parts:
        raise ApiError(400, f"invalid object key {key!r}: empty")
    if any(not p.strip() for p in parts):
        raise ApiError(400, f"invalid object key {key!r}: a name of only spaces")
    return "/".join(parts)


def object_path_candidates(path: object) -> list[tuple[str, str]]:
    """Every (node path, raw key) split of an object path, longest node path first.

    Only the syntax is checked here; which prefix is the owning node is the metadata store's call.
    """
    if not isinstance(path, str) or not path.startswith("/") or len(path) > MAX_PATH_CHARS + MAX_KEY_CHARS:
        raise ApiError(400, f"invalid object path {str(path)[:200]!r}: must be absolute")
    segments = path.split("/")[1:]
    candidates = []
    for i in range(len(segments) - 1, 0, -1):
        if is_valid_name(segments[i - 1]) and all(is_valid_name(s) for s in segments[:i]):
            candidates.append(("/" + "/".join(segments[:i]), "/".join(segments[i:])))
    return candidates
