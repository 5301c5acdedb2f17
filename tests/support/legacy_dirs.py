"""Run and Artifact directories exactly as t9k 0.6.0b0 writes them.

t9k 0.6.0b0 is not installable here (not on PyPI), so these files are copied byte for byte from
the examples of ``shared/spec/local-layout.md`` (§5.2-§5.6, §7.1, §7.3, §8), which were produced by
the real SDK. Only directory names and the matching ``localDir`` values are parameters.
"""

from __future__ import annotations

import os

RUN_ALT = 'mnist_cnn_261126_190121_eie06q'
DATASET_ALT = 'dataset_261126_190121_fis31s'
MODEL_ALT = 'model_261126_190121_froufb'

RUN_METADATA = """\
kind: Run
name: mnist_cnn
labels:
- Keras
- demo
description: A demo run
startTimestamp: '2026-11-26T19:01:21.646034+08:00'
endTimestamp: '2026-11-26T19:01:21.671659+08:00'
status: Complete
alternativeName: mnist_cnn_261126_190121_eie06q
associations:
  input:
  - kind: Artifact
    name: dataset_261126_190121_fis31s
    localDir: {artifacts}/dataset_261126_190121_fis31s
  output:
  - kind: Artifact
    name: model_261126_190121_froufb
    localDir: {artifacts}/model_261126_190121_froufb
remote:
- action: upload
  timestamp: '2026-11-26T11:02:57.613162+00:00'
  host: http://127.0.0.1:18080
  path: /alice/proj/sub/mnist
  id: ecf684f4-e32d-4d12-a5f7-3e17377bbfbf
"""

RUN_INDEX = """\
hyperparameters: hyperparameters.yaml
metrics:
  train: metrics/train.yaml
  val: metrics/val.yaml
platform: platform.yaml
git: git.yaml
log: stdout.log
"""

RUN_HPARAMS = """\
batch_size: 32
lr: 0.001
opt:
  name: Adam
  betas:
  - 0.9
  - 0.999
epochs: 2
dropout: 0.5
"""

TRAIN_METRICS = """\
- value:
    loss: 1.0
    accuracy: 0.5
  sequence:
    epoch: 1
    step: 10
    timestamp: '2026-11-26T19:01:21.662796+08:00'
- value:
    loss: 0.8
    accuracy: 0.6
  sequence:
    epoch: null
    step: 20
    timestamp: '2026-11-26T19:01:21.663486+08:00'
"""

VAL_METRICS = """\
- value:
    loss: 0.9
  sequence:
    epoch: 1
    step: 10
    timestamp: '2026-11-26T19:01:21.662999+08:00'
"""

PLATFORM = """\
hostname: vm
os: Linux-6.18.44-x86_64-with-glibc2.36
python: 3.11.7
pypkgs:
  t9k: 0.6.0b0
framework: ''
"""

GIT = """\
repo_path: null
remote_url: null
branch: null
commit: null
is_dirty: null
entrypoint: /usr/lib/python3.11/site-packages/t9k/em/run.py
"""

MODEL_METADATA = """\
kind: Artifact
name: model
labels:
- ckpt
description: weights
createdTimestamp: '2026-11-26T19:01:21.665878+08:00'
alternativeName: model_261126_190121_froufb
remote: []
"""

DATASET_METADATA = """\
kind: Artifact
name: dataset
labels: []
description: ''
createdTimestamp: '2026-11-26T19:01:21.000000+08:00'
alternativeName: dataset_261126_190121_fis31s
remote: []
"""

REFERENCES = """\
file.tar.gz: s3://bucket/path/file.tar.gz
refs/e.zip: https://example.com/d/e.zip
refs/named: https://example.com/z
"""


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def write_legacy_dirs(runs_dir: str, artifacts_dir: str) -> dict:
    """Writes one finished Run (train + val metrics, one input and one output Artifact) and its
    two Artifacts (the model holds ``a/w.pt`` = ``abc`` and three references). Returns the paths."""
    run = os.path.join(runs_dir, RUN_ALT)
    _write(os.path.join(run, 'metadata.yaml'), RUN_METADATA.format(artifacts=artifacts_dir))
    _write(os.path.join(run, 'index.yaml'), RUN_INDEX)
    _write(os.path.join(run, 'hyperparameters.yaml'), RUN_HPARAMS)
    _write(os.path.join(run, 'metrics', 'train.yaml'), TRAIN_METRICS)
    _write(os.path.join(run, 'metrics', 'val.yaml'), VAL_METRICS)
    _write(os.path.join(run, 'platform.yaml'), PLATFORM)
    _write(os.path.join(run, 'git.yaml'), GIT)
    _write(os.path.join(run, 'stdout.log'), '')
    model = os.path.join(artifacts_dir, MODEL_ALT)
    _write(os.path.join(model, 'metadata.yaml'), MODEL_METADATA)
    _write(os.path.join(model, 'a', 'w.pt'), 'abc')
    _write(os.path.join(model, 'references.yaml'), REFERENCES)
    dataset = os.path.join(artifacts_dir, DATASET_ALT)
    _write(os.path.join(dataset, 'metadata.yaml'), DATASET_METADATA)
    return {'run': run, 'model': model, 'dataset': dataset}
