"""``create_artifact`` / ``load_artifact`` / ``Artifact``: object paths, references, errors."""

from __future__ import annotations

import hashlib
import os

import pytest

from support import legacy_loader
from t9k import em
from t9k_em_core import artifact_files, metadata_file


@pytest.fixture
def em_dirs(em_dirs):
    """conftest's ``em_dirs`` with a file ``w.pt`` and a folder ``data/`` to add."""
    tmp_path = em_dirs
    (tmp_path / 'w.pt').write_bytes(b'abc')
    data = tmp_path / 'data'
    (data / 'sub').mkdir(parents=True)
    (data / 'a.txt').write_text('A')
    (data / 'sub' / 'b.txt').write_text('BB')
    return tmp_path


def _objects_on_disk(artifact):
    return sorted(p for p in artifact_files.walk_files(artifact.local)
                  if p not in ('metadata.yaml', 'references.yaml'))


def test_create_artifact_writes_metadata_only(em_dirs):
    art = em.create_artifact('model', labels=['ckpt'], description='weights')
    assert os.path.dirname(art.local) == str(em_dirs / 'artifacts')
    assert os.listdir(art.local) == ['metadata.yaml']
    meta = metadata_file.read_metadata(art.local)
    assert meta == {'kind': 'Artifact', 'name': 'model', 'labels': ['ckpt'],
                    'description': 'weights', 'createdTimestamp': art.created_timestamp,
                    'alternativeName': art.alternative_name, 'remote': []}
    with pytest.raises(ValueError, match='Invalid name of Artifact'):
        em.create_artifact('no good')


@pytest.mark.parametrize('obj_path, expected', [
    (None, 'w.pt'), ('w.pt', 'w.pt'), ('a/', 'a/w.pt'), ('a/w.pt', 'a/w.pt'), ('/b/c.pt', 'b/c.pt'),
    ('', 'w.pt'),
])
def test_add_file_object_paths(em_dirs, obj_path, expected):
    art = em.create_artifact('model')
    art.add_file('w.pt', obj_path=obj_path)
    assert _objects_on_disk(art) == [expected]
    assert art.objects[expected] == {'path': expected, 'size_bytes': 3,
                                     'checksum': '900150983cd24fb0d6963f7d28e17f72'}


@pytest.mark.parametrize('dir_path, obj_path, expected', [
    ('data', None, ['data/a.txt', 'data/sub/b.txt']),
    ('data/', None, ['data/a.txt', 'data/sub/b.txt']),
    ('data/', 'data', ['data/a.txt', 'data/sub/b.txt']),
    ('data/', 'x/', ['x/data/a.txt', 'x/data/sub/b.txt']),
    ('data/', 'x/data', ['x/data/a.txt', 'x/data/sub/b.txt']),
])
def test_add_dir_object_paths(em_dirs, dir_path, obj_path, expected):
    art = em.create_artifact('dataset')
    art.add_dir(dir_path, obj_path=obj_path)
    assert _objects_on_disk(art) == expected
    assert sorted(art.objects) == expected
    assert art.objects[expected[1]]['checksum'] == hashlib.md5(b'BB').hexdigest()


@pytest.mark.parametrize('uri, obj_path, expected', [
    ('s3://bucket/path/file.tar.gz', None, 'file.tar.gz'),
    ('https://example.com/d/e.zip', 'refs/', 'refs/e.zip'),
    ('https://example.com/z', 'refs/named', 'refs/named'),
])
def test_add_reference_object_paths(em_dirs, uri, obj_path, expected):
    art = em.create_artifact('refs')
    art.add_reference(uri, obj_path=obj_path)
    assert artifact_files.read_references(art.local) == {expected: uri}
    assert art.objects == {expected: {'path': expected, 'uri': uri}}
    assert _objects_on_disk(art) == []


def test_file_and_reference_cannot_share_a_path(em_dirs):
    art = em.create_artifact('clash')
    art.add_reference('s3://b/w.pt')
    with pytest.raises(ValueError, match="Object reference already exists: 'w.pt'"):
        art.add_file('w.pt')
    art.add_file('w.pt', obj_path='f/')
    with pytest.raises(ValueError, match="Object file already exists: 'f/w.pt'"):
        art.add_reference('s3://b/w.pt', obj_path='f/')
    with pytest.raises(ValueError, match='is a directory of objects'):
        art.add_reference('s3://b/x', obj_path='f')
    with pytest.raises(ValueError, match="needs 'f/w.pt' to be a directory"):
        art.add_file('w.pt', obj_path='f/w.pt/')
    art.add_file('w.pt', obj_path='f/')  # re-adding the same kind overwrites
    art.add_reference('s3://b/other', obj_path='w.pt')
    assert art.objects['w.pt']['uri'] == 's3://b/other'


@pytest.mark.parametrize('obj_path, message', [
    ('../escape.pt', 'stay inside'), ('a/../../x', 'stay inside'), ('//etc/passwd', 'relative'),
    ('a//b', 'empty'), ('./a', 'empty'), ('metadata.yaml', 'reserved'),
    ('/references.yaml', 'reserved'),
])
def test_unsafe_object_paths_are_refused(em_dirs, obj_path, message):
    art = em.create_artifact('safe')
    with pytest.raises(ValueError, match=message):
        art.add_file('w.pt', obj_path=obj_path)
    with pytest.raises(ValueError, match=message):
        art.add_reference('s3://b/k', obj_path=obj_path)
    assert os.listdir(art.local) == ['metadata.yaml']
    assert not os.path.exists(em_dirs / 'artifacts' / 'escape.pt')


def test_missing_sources_name_the_path(em_dirs):
    art = em.create_artifact('missing')
    with pytest.raises(FileNotFoundError, match="File does not exist: 'nope.pt'"):
        art.add_file('nope.pt')
    with pytest.raises(FileNotFoundError, match="Directory does not exist: 'nodir'"):
        art.add_dir('nodir')
    with pytest.raises(FileNotFoundError, match='File does not exist'):
        art.add_file('data')  # a directory is not a file
    with pytest.raises(RuntimeError, match='File does not exist'):  # what 0.6.0b0 raised
        art.add_file('nope.pt')


def test_load_artifact_in_place_and_round_trip(em_dirs):
    art = em.create_artifact('model', labels=['x'])
    art.add_file('w.pt', obj_path='a/')
    art.add_dir('data')
    art.add_reference('s3://bucket/k.tar')
    moved = em_dirs / 'elsewhere' / os.path.basename(art.local)
    os.makedirs(moved.parent)
    os.rename(art.local, moved)
    loaded = em.load_artifact(str(moved))
    assert loaded.local == str(moved) and loaded.objects == art.objects
    assert loaded.to_dict() == art.to_dict() == metadata_file.read_metadata(str(moved))
    assert list(loaded.to_dict()) == ['kind', 'name', 'labels', 'description', 'createdTimestamp',
                                      'alternativeName', 'remote']  # 0.6.0b0's to_dict()
    assert not os.listdir(em_dirs / 'artifacts')  # no skeleton left in the parent dir
    # no object list or checksum file on disk (0.6.0b0 would take it for an object)
    assert sorted(os.listdir(moved)) == ['a', 'data', 'metadata.yaml', 'references.yaml']
    legacy = legacy_loader.load_artifact_dir(str(moved))
    assert legacy['files'] == ['a/w.pt', 'data/a.txt', 'data/sub/b.txt']

    other = em.create_artifact('other')
    other.parse_from_dict(loaded.to_dict())
    assert other.name == 'model' and other.labels == ['x'] and other.objects == {}
    assert metadata_file.read_metadata(other.local) == loaded.to_dict()
    with pytest.raises(ValueError, match="Unknown key.*'objects'"):
        other.parse_from_dict({'metadata': {}, 'objects': {}})
