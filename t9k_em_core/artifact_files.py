"""An Artifact directory: its files (objects with size and MD5) and ``references.yaml``."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, List

from t9k_em_core import metadata_file
from t9k_em_core.fileio import is_temporary_file, read_yaml, write_yaml

REFERENCES_FILE = 'references.yaml'
ARTIFACT_CONTROL_FILES = frozenset((metadata_file.METADATA_FILE, REFERENCES_FILE))


def read_references(artifact_dir: str) -> Dict[str, str]:
    """``references.yaml`` of an Artifact directory (``{}`` when absent)."""
    path = os.path.join(artifact_dir, REFERENCES_FILE)
    if not os.path.isfile(path):
        return {}
    return dict(read_yaml(path, {}))


def write_references(artifact_dir: str, references: Dict[str, str]) -> None:
    """Rewrites ``references.yaml``."""
    write_yaml(os.path.join(artifact_dir, REFERENCES_FILE), references)


def file_md5(path: str, chunk_size: int = 1 << 20) -> str:
    """Lowercase hex MD5 of a file's content."""
    digest = hashlib.md5()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_size), b''):
            digest.update(chunk)
    return digest.hexdigest()


def file_object(root: str, obj_path: str) -> Dict[str, Any]:
    """In-memory description of a file object: ``{path, size_bytes, checksum}`` (MD5)."""
    full = os.path.join(root, *obj_path.split('/'))
    return {'path': obj_path, 'size_bytes': os.path.getsize(full), 'checksum': file_md5(full)}


def walk_files(root: str) -> List[str]:
    """Relative ``/``-separated paths of every file under ``root``, top-level files first."""
    out: List[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        prefix = '' if rel == '.' else rel.replace(os.sep, '/') + '/'
        out.extend(prefix + name for name in sorted(filenames))
    return out


def walk_objects(artifact_dir: str) -> Dict[str, Dict[str, Any]]:
    """Objects of an Artifact directory: files with size + MD5, then references."""
    objects: Dict[str, Dict[str, Any]] = {}
    for rel in walk_files(artifact_dir):
        if rel in ARTIFACT_CONTROL_FILES or is_temporary_file(rel.rsplit('/', 1)[-1]):
            continue
        objects[rel] = file_object(artifact_dir, rel)
    for obj_path, uri in read_references(artifact_dir).items():
        objects[obj_path] = {'path': obj_path, 'uri': uri}
    return objects


def read_artifact_dir(artifact_dir: str) -> Dict[str, Any]:
    """Reads an Artifact directory: ``{metadata, objects}`` (``alternativeName`` := basename)."""
    path = os.path.join(artifact_dir, metadata_file.METADATA_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Missing file of Artifact: {path!r}')
    metadata = metadata_file.read_metadata(artifact_dir)
    for key in metadata_file.ARTIFACT_METADATA_KEYS:
        if key not in metadata:
            raise KeyError(f'Missing key {key!r} in {path!r}')
    metadata['alternativeName'] = os.path.basename(os.path.normpath(artifact_dir))
    return {'metadata': metadata, 'objects': walk_objects(artifact_dir)}
