"""``Artifact`` (a set of files a Run inputs or outputs), ``create_artifact``, ``load_artifact``,
and ``Reference`` (lineage to assets stored elsewhere)."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from t9k_em_core import artifact_files, distributed, metadata_file, naming

REFERENCE_KINDS = ('Model', 'Dataset', 'branch', 'tag', 'commit')
_COPY_CHUNK = 1 << 20


class Reference:
    """An asset stored elsewhere that a Run can mark as input or output.

    It stands for the Asset Hub objects of 0.6.0b0 and is recorded in the Run's
    ``associations`` exactly as they were (``{kind, id, path}``, local-layout spec §5.7):

    ============  ================================  ====================================
    kind          id                                path
    ============  ================================  ====================================
    ``Model``     asset ID                          asset path
    ``Dataset``   asset ID                          asset path
    ``branch``    ``<asset id>:<branch>``           ``<asset path>:<branch>``
    ``tag``       ``<asset id>:<tag>``              ``<asset path>:<tag>``
    ``commit``    ``<asset id>:<commit id[:8]>``    ``<asset path>:<full commit id>``
    ============  ================================  ====================================

    Example: ``run.mark_input(em.Reference('Dataset', 'c0ffee', '/alice/datasets/mnist'))``.

    Raises:
        ValueError: unknown ``kind``, or an empty ``id``/``path``.
    """

    __slots__ = ('kind', 'id', 'path')

    def __init__(self, kind: str, id: str, path: str) -> None:  # noqa: A002 - the spec's name
        if kind not in REFERENCE_KINDS:
            raise ValueError(f'Reference kind must be one of {", ".join(REFERENCE_KINDS)}, '
                             f'got {kind!r}')
        for field, value in (('id', id), ('path', path)):
            if not isinstance(value, str) or not value:
                raise ValueError(f'Reference {field} must be a non-empty str, got {value!r}')
        self.kind = kind
        self.id = id
        self.path = path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and self.to_association() == other.to_association()

    def __hash__(self) -> int:
        return hash((self.kind, self.id, self.path))

    def __repr__(self) -> str:
        return f'Reference(kind={self.kind!r}, id={self.id!r}, path={self.path!r})'

    def to_association(self) -> Dict[str, str]:
        """The entry written to a Run's ``associations``."""
        return {'kind': self.kind, 'id': self.id, 'path': self.path}


class SourceNotFoundError(FileNotFoundError, RuntimeError):
    """The file or directory given to ``add_file``/``add_dir`` does not exist.

    Also a ``RuntimeError``, which is what t9k 0.6.0b0 raised, so its callers' handlers still work.
    """


def object_path(base: str, obj_path: Optional[str]) -> str:
    """Object path of a source whose basename is ``base``, under the 0.6.0b0 rules.

    No/empty ``obj_path``: ``base``; otherwise strip one leading ``/``, and append ``base`` when
    the result ends with ``/``. Raises ``ValueError`` for a path that would leave the Artifact
    (``..``, absolute), has empty or ``.`` parts, or names a control file (``metadata.yaml``,
    ``references.yaml``).
    """
    if obj_path is not None and not isinstance(obj_path, str):
        raise TypeError(f'obj_path must be a str, got {type(obj_path).__name__}')
    path = obj_path or ''
    if path.startswith('/'):
        path = path[1:]
    if not path:
        path = base
    elif path.endswith('/'):
        path += base
    if path.startswith('/'):
        raise ValueError(f'Object path must be relative: {obj_path!r}')
    parts = path.split('/')
    if '..' in parts:
        raise ValueError(f'Object path must stay inside the Artifact: {path!r}')
    if any(p in ('', '.') for p in parts) or '\0' in path or '\\' in path:
        raise ValueError(f'Invalid object path {path!r}: empty, "." or backslash parts')
    if path in artifact_files.ARTIFACT_CONTROL_FILES:
        raise ValueError(f'Object path {path!r} is reserved for the Artifact\'s own file')
    return path


def _copy_with_md5(src: str, dest: str) -> Tuple[int, str]:
    import hashlib

    digest = hashlib.md5()
    size = 0
    with open(src, 'rb') as fin, open(dest, 'wb') as fout:
        while True:
            chunk = fin.read(_COPY_CHUNK)
            if not chunk:
                break
            fout.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class Artifact:
    """A set of files that a Run inputs or outputs.

    Normally created by :func:`create_artifact` or :func:`load_artifact`. Constructing one
    creates its local directory and ``metadata.yaml`` when they do not exist.

    Args:
        metadata: Metadata of the Artifact (the keys of ``metadata.yaml``).
        objects: Objects of the Artifact; by default found by walking its directory.
        local_dir: Local directory (default ``$EM_ARTIFACT_PARENT_DIR/<alternativeName>``).
        inert: Accept every call but copy, write and upload nothing (non-zero ranks).

    Attributes:
        name, labels, description, created_timestamp, alternative_name, objects (object path →
        ``{path, size_bytes, checksum}`` or ``{path, uri}``), remote, local, is_inert.
    """

    def __init__(self, metadata: Dict[str, Any],
                 objects: Optional[Dict[str, Dict[str, Any]]] = None, *,
                 local_dir: Optional[str] = None, inert: bool = False) -> None:
        self.name: str = metadata['name']
        self.labels: List[str] = list(metadata.get('labels') or [])
        self.description: str = metadata.get('description') or ''
        self.created_timestamp: str = metadata.get('createdTimestamp') or metadata_file.now_iso()
        self.alternative_name: str = (metadata.get('alternativeName')
                                      or naming.alternative_name(self.name))
        self.remote: List[Dict[str, Any]] = list(metadata.get('remote') or [])
        self.local: str = local_dir or os.path.join(naming.artifact_parent_dir(),
                                                    self.alternative_name)
        self.is_inert = inert
        self.objects: Dict[str, Dict[str, Any]] = dict(objects or {})
        if inert:
            return
        os.makedirs(self.local, exist_ok=True)
        if not os.path.isfile(os.path.join(self.local, metadata_file.METADATA_FILE)):
            self._write_metadata()
        if objects is None:
            self.objects = artifact_files.walk_objects(self.local)

    # --- seed API -------------------------------------------------------------------------------

    def add_file(self, file_path: str, obj_path: Optional[str] = None) -> None:
        """Adds a local file as an object (copied to ``<local>/<object path>``).

        ``add_file('1.png')`` → ``1.png``; ``obj_path='a/'`` → ``a/1.png``;
        ``obj_path='a/1.png'`` → ``a/1.png``; a leading ``/`` is ignored once.

        Raises:
            SourceNotFoundError: ``file_path`` is not a file.
            ValueError: bad object path, or a reference / directory already has it.
        """
        if not os.path.isfile(file_path):
            raise SourceNotFoundError(f'File does not exist: {file_path!r}')
        obj = object_path(os.path.basename(os.path.abspath(file_path)), obj_path)
        self._check_file_target(obj)
        if not self.is_inert:
            self._copy(file_path, obj)

    def add_dir(self, dir_path: str, obj_path: Optional[str] = None) -> None:
        """Adds every file under a local directory (copied to ``<local>/<object path>/...``).

        ``add_dir('a/')`` or ``add_dir('a')`` → ``a/...``; ``obj_path='b/'`` → ``b/a/...``;
        ``obj_path='b/a'`` → ``b/a/...``.

        Raises:
            SourceNotFoundError: ``dir_path`` is not a directory.
            ValueError: bad object path, or a reference / file already has one of the paths.
        """
        if not os.path.isdir(dir_path):
            raise SourceNotFoundError(f'Directory does not exist: {dir_path!r}')
        base = object_path(os.path.basename(os.path.abspath(dir_path)), obj_path)
        files = artifact_files.walk_files(dir_path)
        targets = [(rel, f'{base}/{rel}') for rel in files]
        for _, obj in targets:
            self._check_file_target(obj)
        if not self.is_inert:
            for rel, obj in targets:
                self._copy(os.path.join(dir_path, *rel.split('/')), obj)

    def add_reference(self, uri: str, obj_path: Optional[str] = None) -> None:
        """Adds a URI as an object reference (a line of ``references.yaml``; nothing copied).

        Raises:
            ValueError: bad object path, or a file object already has it.
        """
        if not isinstance(uri, str) or not uri:
            raise ValueError(f'uri must be a non-empty str, got {uri!r}')
        obj = object_path(uri.rstrip('/').rsplit('/', 1)[-1], obj_path)
        existing = self.objects.get(obj)
        if existing is not None and 'uri' not in existing:
            raise ValueError(f'Object file already exists: {obj!r}')
        if any(p.startswith(obj + '/') for p in self.objects):
            raise ValueError(f'Object path {obj!r} is a directory of objects')
        if self.is_inert:
            return
        references = artifact_files.read_references(self.local)
        references[obj] = uri
        artifact_files.write_references(self.local, references)
        self.objects[obj] = {'path': obj, 'uri': uri}

    def upload(self, folder: str = 'default', make_folder: bool = False,
               conflict_strategy: str = 'new') -> None:
        """Uploads this Artifact to the server.

        Args:
            folder: Folder to upload to; a relative path goes under ``/<current-user>/``.
            make_folder: Create the Folder and its parents when missing.
            conflict_strategy: ``'skip'``, ``'error'``, ``'new'`` or ``'replace'``.
        """
        if self.is_inert:
            return
        from t9k_em_core import transfer  # the HTTP stack: imported on first use
        transfer.upload_artifact(self.local, folder, make_folder, conflict_strategy)
        self.remote = list(metadata_file.read_metadata(self.local).get('remote') or [])

    def to_dict(self) -> Dict[str, Any]:
        """The Artifact's metadata as 0.6.0b0 returns it: a flat dict of ``kind``, ``name``,
        ``labels``, ``description``, ``createdTimestamp``, ``alternativeName`` and ``remote``
        (the keys of ``metadata.yaml``). The objects are the attribute ``objects``."""
        return self._metadata_dict()

    def parse_from_dict(self, data: Dict[str, Any]) -> None:
        """Sets this Artifact's metadata attributes from a dict shaped like :meth:`to_dict`'s
        result (keys it lacks keep their values) and rewrites ``metadata.yaml``.

        Raises:
            TypeError: ``data`` is not a dict.
            ValueError: ``kind`` is not ``'Artifact'``, or a key is not one of :meth:`to_dict`'s.
        """
        metadata_file.check_metadata_dict(data, 'Artifact', metadata_file.ARTIFACT_METADATA_KEYS)
        self.name = data.get('name', self.name)
        self.labels = list(data.get('labels', self.labels) or [])
        self.description = data.get('description', self.description) or ''
        self.created_timestamp = data.get('createdTimestamp', self.created_timestamp)
        self.alternative_name = data.get('alternativeName', self.alternative_name)
        self.remote = list(data.get('remote', self.remote) or [])
        if not self.is_inert:
            self._write_metadata()

    def __repr__(self) -> str:
        return f'<Artifact {self.alternative_name} ({len(self.objects)} objects) at {self.local!r}>'

    # --- internals ------------------------------------------------------------------------------

    def _metadata_dict(self) -> Dict[str, Any]:
        return {
            'kind': 'Artifact',
            'name': self.name,
            'labels': list(self.labels),
            'description': self.description,
            'createdTimestamp': self.created_timestamp,
            'alternativeName': self.alternative_name,
            'remote': list(self.remote),
        }

    def _write_metadata(self) -> None:
        self.remote = metadata_file.write_metadata(self.local, self._metadata_dict())

    def _check_file_target(self, obj: str) -> None:
        existing = self.objects.get(obj)
        if existing is not None and 'uri' in existing:
            raise ValueError(f'Object reference already exists: {obj!r}')
        parts = obj.split('/')
        for i in range(1, len(parts)):
            prefix = '/'.join(parts[:i])
            if prefix in self.objects:
                raise ValueError(f'Object path {obj!r} needs {prefix!r} to be a directory, but '
                                 'it is an object')
        if any(p.startswith(obj + '/') for p in self.objects):
            raise ValueError(f'Object path {obj!r} is a directory of objects')

    def _copy(self, src: str, obj: str) -> None:
        dest = os.path.join(self.local, *obj.split('/'))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        size, checksum = _copy_with_md5(src, dest)
        self.objects[obj] = {'path': obj, 'size_bytes': size, 'checksum': checksum}


def create_artifact(name: str, labels: Optional[Sequence[str]] = None,
                    description: str = '') -> Artifact:
    """Creates and initializes a new Artifact.

    Its directory is ``$EM_ARTIFACT_PARENT_DIR/<alternativeName>`` (default parent
    ``.em/artifacts``, read at each call). On a non-zero rank the Artifact is inert unless
    ``EM_ALL_RANKS=1`` (then named ``<name>-rank<k>``).

    Args:
        name: Name of the Artifact (the Run name rule).
        labels: Labels of the Artifact.
        description: Description of the Artifact.
    """
    naming.validate_name(name, 'Artifact')
    rank = distributed.get_rank()
    all_ranks = distributed.all_ranks_enabled()
    if rank != 0 and all_ranks:
        name = distributed.rank_suffixed_name(name, rank)
    if description is None:
        description = ''
    if not isinstance(description, str):
        raise TypeError(f'description must be a str, got {type(description).__name__}')
    metadata = metadata_file.new_artifact_metadata(name, naming.validate_labels(labels), description,
                                            naming.alternative_name(name))
    return Artifact(metadata, {}, inert=rank != 0 and not all_ranks)


def load_artifact(path: str) -> Artifact:
    """Loads an Artifact from a local directory (in place) or from the server.

    A local directory is used where it is. Otherwise ``path`` is a server path (a relative one
    goes under ``/<current-user>/``), downloaded to ``$EM_ARTIFACT_PARENT_DIR/<alternativeName>``
    (login needed).
    """
    if not os.path.isdir(path):
        from t9k_em_core import transfer  # the HTTP stack: imported on first use
        path = transfer.download(path, 'Artifact')
    data = artifact_files.read_artifact_dir(path)
    return Artifact(data['metadata'], data['objects'], local_dir=path)
