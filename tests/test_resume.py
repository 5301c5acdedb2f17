"""Resume and rewind of a Run (docs/resume.md): the keys on disk, ``run.rewind``, ``resume=``."""

from __future__ import annotations

from support import legacy_loader
from t9k import em
from t9k_em_core import metadata_file


def test_resume_keys_survive_load_run_and_finish(em_dirs):
    run = em.create_run(name='keys')
    run.finish()
    meta = metadata_file.read_metadata(run.local)
    segment = metadata_file.new_segment(5, 'test', 'Error', {'train': 10})
    del segment[metadata_file.SEGMENT_CUTTING]
    meta.update({metadata_file.RESUME_KEY: 'k1', metadata_file.SEGMENTS: [segment]})
    metadata_file.write_metadata(run.local, meta)

    again = em.load_run(run.local)
    assert again.resume_key == 'k1' and again.segments == [segment]
    again.finish()
    meta = metadata_file.read_metadata(run.local)
    assert meta[metadata_file.RESUME_KEY] == 'k1' and meta[metadata_file.SEGMENTS] == [segment]
    assert meta['status'] == 'Complete'
    assert legacy_loader.load_run_dir(run.local)['metadata']['segments'] == [segment]
