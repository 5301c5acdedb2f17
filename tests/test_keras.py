"""EMCallback with real Keras 3 training: TensorFlow backend in this process, the torch backend
and tf.distribute.MirroredStrategy (two logical CPU devices) in subprocesses (tests/support/keras_job.py).

Run files are read with ``yaml.safe_load``, as t9k 0.6.0b0 reads them.
"""

from __future__ import annotations

import glob
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import yaml

keras = pytest.importorskip('keras')

from t9k.em.keras import EMCallback, EMEvalCallback, EMFitCallback  # noqa: E402
from t9k_em_core.run import create_run  # noqa: E402

HERE = pathlib.Path(__file__).parent
pytestmark = pytest.mark.skipif(keras.backend.backend() != 'tensorflow',
                                reason='the in-process tests use the TensorFlow backend')


@pytest.fixture(autouse=True)
def em_dirs(em_dirs):
    """conftest's ``em_dirs`` for every test here; returns the run parent directory."""
    return em_dirs / 'runs'


def load(path) -> object:
    with open(path) as f:
        return yaml.safe_load(f)


def read_run(run_dir) -> dict:
    run_dir = str(run_dir)
    return {'metadata': load(os.path.join(run_dir, 'metadata.yaml')),
            'hparams': load(os.path.join(run_dir, 'hyperparameters.yaml')),
            'metrics': {os.path.basename(p)[:-len('.yaml')]: load(p)
                        for p in glob.glob(os.path.join(run_dir, 'metrics', '*.yaml'))}}


def data(n: int = 160) -> tuple:
    rng = np.random.default_rng(0)
    x = rng.random((n, 8)).astype('float32')
    return x, (x[:, 0] + x[:, 1] > 1).astype('int32')


def mlp(name: str = 'mlp', learning_rate=0.05):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation='relu'),
                              keras.layers.Dense(2, activation='softmax')], name=name)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    return model


def steps(entries) -> list:
    return [e['sequence']['step'] for e in entries]


def epochs(entries) -> list:
    return [e['sequence']['epoch'] for e in entries]


class Job:
    """A keras_job.py scenario running in its own process, with its own run directory."""

    def __init__(self, scenario: str, run_dir: pathlib.Path, **env: str) -> None:
        self.run_dir = run_dir
        env = {**os.environ, 'EM_RUN_PARENT_DIR': str(run_dir),
               'EM_ARTIFACT_PARENT_DIR': str(run_dir.parent / 'artifacts'), **env}
        self.stdout, self.stderr = run_dir.parent / 'stdout.txt', run_dir.parent / 'stderr.txt'
        with open(self.stdout, 'w') as out, open(self.stderr, 'w') as err:
            self.process = subprocess.Popen([sys.executable, str(HERE / 'support' / 'keras_job.py'), scenario],
                                            env=env, cwd=str(run_dir.parent), stdout=out, stderr=err)

    def result(self) -> tuple[int, str, dict]:
        """Exit status, stderr and the JSON facts the job printed."""
        returncode = self.process.wait(timeout=300)
        stdout, stderr = self.stdout.read_text(), self.stderr.read_text()
        facts = json.loads(next((line for line in stdout.splitlines() if line.startswith('{')), 'null'))
        assert facts is not None, stderr[-3000:]
        return returncode, stderr, facts


@pytest.fixture(scope='module', autouse=True)
def jobs(tmp_path_factory):
    """Starts the subprocess jobs first, so that they run while the in-process tests do."""
    started = {'torch': Job('torch', tmp_path_factory.mktemp('torch') / 'runs', KERAS_BACKEND='torch'),
               'mirrored': Job('mirrored', tmp_path_factory.mktemp('mirrored') / 'runs',
                               KERAS_BACKEND='tensorflow')}
    yield started
    for job in started.values():
        if job.process.poll() is None:
            job.process.kill()
            job.process.wait()


def test_fit_creates_names_describes_and_completes_a_run():
    x, y = data()
    model = mlp('mlp.v2')
    callback = EMCallback()
    history = model.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, verbose=0,
                        callbacks=[callback])
    run = read_run(callback.run.local)

    meta = run['metadata']
    assert (meta['name'], meta['status'], meta['labels']) == ('mlp_v2', 'Complete', ['keras'])
    hp = run['hparams']
    assert hp['optimizer']['class'] == 'Adam'
    assert hp['optimizer']['learning_rate'] == pytest.approx(0.05)
    assert hp['optimizer']['beta_1'] == pytest.approx(0.9)
    assert hp['lossType'] == 'sparse_categorical_crossentropy'
    assert hp['metricTypes'] == ['accuracy']
    assert (hp['batch_size'], hp['epochs'], hp['steps_per_epoch']) == (16, 3, 8)
    assert hp['validation_split'] == 0.25
    assert hp['trainable_params'] == hp['total_params'] == 8 * 8 + 8 + 8 * 2 + 2
    assert hp['keras'] == {'version': keras.__version__, 'backend': 'tensorflow'}
    assert 'distributed' not in hp

    train, val = run['metrics']['train'], run['metrics']['val']
    assert steps(train) == steps(val) == [8, 16, 24]
    assert epochs(train) == epochs(val) == [1, 2, 3]
    assert [e['value']['loss'] for e in train] == pytest.approx(history.history['loss'])
    assert [e['value']['loss'] for e in val] == pytest.approx(history.history['val_loss'])
    assert set(val[0]['value']) == {'loss', 'accuracy'}
    assert 'test' not in run['metrics']  # validation inside fit is not a test


def test_steps_with_validation_every_other_epoch_and_a_second_fit():
    """The step is read when the epoch's validation begins, or at the epoch's end when the epoch
    has none; a second fit goes on from the optimizer's count."""
    x, y = data()
    model = mlp('every_other')
    run = create_run(name="every_other")
    model.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, validation_freq=2, verbose=0,
              callbacks=[EMCallback(run)])
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[EMCallback(run)])
    run.finish()
    found = run.metrics
    assert steps(found['train']) == [8, 16, 24, 24 + 5]  # 120 samples / 16, then 160 / 32
    assert epochs(found['train']) == [1, 2, 3, 1]
    assert steps(found['val']) == [16] and epochs(found['val']) == [2]


def test_given_run_is_left_open_and_evaluate_logs_test():
    x, y = data()
    model = mlp()
    run = create_run(name='given', labels=['mine'])
    model.fit(x, y, batch_size=40, epochs=2, validation_data=(x[:40], y[:40]), verbose=0,
              callbacks=[EMCallback(run)])
    assert run.status == 'Running'
    result = model.evaluate(x, y, batch_size=80, verbose=0, return_dict=True,
                            callbacks=[EMCallback(run)])
    run.finish()

    files = read_run(run.local)
    assert files['metadata']['status'] == 'Complete'
    assert files['metadata']['labels'] == ['mine']
    test = files['metrics']['test']
    assert len(test) == 1 and steps(test) == [8]
    assert test[0]['value'] == pytest.approx(result)
    assert len(files['metrics']['val']) == 2


def test_evaluate_alone_with_an_owned_run():
    x, y = data()
    model = mlp('evaluated')
    callback = EMCallback()
    result = model.evaluate(x, y, verbose=0, return_dict=True, callbacks=[callback])
    files = read_run(callback.run.local)
    assert (files['metadata']['name'], files['metadata']['status']) == ('evaluated', 'Complete')
    assert files['metrics']['test'][0]['value'] == pytest.approx(result)
    assert steps(files['metrics']['test']) == [0]


def test_batch_logging_is_opt_in():
    assert 'on_train_batch_end' not in vars(EMCallback())  # Keras' default hook, never called
    x, y = data()
    callback = EMCallback(log_every_n_batches=3)
    model = mlp()
    model.fit(x, y, batch_size=20, epochs=2, verbose=0, callbacks=[callback])
    train = read_run(callback.run.local)['metrics']['train']
    batch_steps = [3, 6, 9, 12, 15]  # every 3rd of 8 steps per epoch, over 2 epochs
    epoch_steps = [8, 16]
    assert sorted(steps(train)) == sorted(batch_steps + epoch_steps)
    assert epochs(train) == [1, 1, 1, 2, 2, 2, 2]  # in logged order: 3, 6, 8 | 9, 12, 15, 16


def test_learning_rate_schedule_is_recorded_and_its_rate_logged():
    x, y = data()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
    model = mlp(learning_rate=schedule)
    callback = EMCallback()
    model.fit(x, y, batch_size=40, epochs=2, verbose=0, callbacks=[callback])
    run = read_run(callback.run.local)
    lr = run['hparams']['optimizer']['learning_rate']
    assert lr['class_name'] == 'ExponentialDecay' and lr['config']['decay_steps'] == 4
    train = run['metrics']['train']
    assert [e['value']['learning_rate'] for e in train] == pytest.approx([0.05, 0.025])  # steps 4, 8


@pytest.mark.parametrize('save_model', ['best', 'final'])
def test_model_is_saved_as_output_artifact(save_model):
    x, y = data()
    model = mlp(learning_rate=0.5)  # large steps: the validation loss moves up and down
    callback = EMCallback(save_model=save_model)
    history = model.fit(x[:120], y[:120], batch_size=20, epochs=6, verbose=0,
                        validation_data=(x[120:], y[120:]), callbacks=[callback])
    output = read_run(callback.run.local)['metadata']['associations']['output']
    assert [o['kind'] for o in output] == ['Artifact']
    artifact_dir = output[0]['localDir']
    assert load(os.path.join(artifact_dir, 'metadata.yaml'))['name'] == 'mlp_model'
    saved = keras.saving.load_model(os.path.join(artifact_dir, 'model.keras'))
    val_loss = saved.evaluate(x[120:], y[120:], verbose=0, return_dict=True)['loss']
    expected = min(history.history['val_loss']) if save_model == 'best' else model.evaluate(
        x[120:], y[120:], verbose=0, return_dict=True)['loss']
    assert val_loss == pytest.approx(expected, rel=1e-5)


def test_fit_that_raised_is_ended_as_error_by_the_next_fit():
    x, y = data()
    model = mlp()
    callback = EMCallback()

    def fail(epoch, logs):
        raise RuntimeError('boom')

    with pytest.raises(RuntimeError, match='boom'):
        model.fit(x, y, epochs=2, verbose=0,
                  callbacks=[callback, keras.callbacks.LambdaCallback(on_epoch_end=fail)])
    failed = callback.run
    assert failed.status == 'Running'  # the process is alive: nothing has ended it yet
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert read_run(failed.local)['metadata']['status'] == 'Error'
    assert len(read_run(failed.local)['metrics']['train']) == 1  # the epoch logged before the error
    assert read_run(callback.run.local)['metadata']['status'] == 'Complete'


def test_create_run_arguments_pass_through():
    x, y = data()
    callback = EMCallback(name='custom', labels=['a'], description='d', hparams={'seed': 1})
    mlp().fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    run = read_run(callback.run.local)
    assert (run['metadata']['name'], run['metadata']['labels'], run['metadata']['description']) == (
        'custom', ['a', 'keras'], 'd')
    assert run['hparams']['seed'] == 1 and run['hparams']['batch_size'] == 32  # Keras' default


def test_system_metrics_option_reaches_the_run(monkeypatch):
    monkeypatch.delenv('EM_SYSTEM_METRICS')  # sampling at its default (on): False must stop it
    x, y = data()
    sampled = EMCallback(system_metrics=0.1)
    mlp().fit(x, y, epochs=2, verbose=0, callbacks=[sampled])
    quiet = EMCallback(system_metrics=False)
    mlp().fit(x, y, epochs=1, verbose=0, callbacks=[quiet])
    samples = read_run(sampled.run.local)['metrics']['system']
    assert steps(samples) == list(range(len(samples))) and len(samples) >= 2
    assert all(e['sequence']['epoch'] is None for e in samples)
    assert set(read_run(quiet.run.local)['metrics']) == {'train'}


def test_user_hyperparameters_win_over_captured_ones():
    x, y = data()
    run = create_run(name='mine', hparams={'batch_size': 'as in the paper'})
    mlp().fit(x, y, batch_size=40, epochs=1, verbose=0, callbacks=[EMCallback(run)])
    run.finish()
    assert read_run(run.local)['hparams']['batch_size'] == 'as in the paper'


def test_parameter_counts_of_a_partly_frozen_model():
    x, y = data()
    model = mlp()
    model.layers[0].trainable = False
    model.compile(optimizer='sgd', loss='sparse_categorical_crossentropy')
    callback = EMCallback()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    hp = read_run(callback.run.local)['hparams']
    assert (hp['trainable_params'], hp['total_params']) == (8 * 2 + 2, 8 * 8 + 8 + 8 * 2 + 2)
    assert hp['optimizer']['class'] == 'SGD' and hp['metricTypes'] == []


def test_batch_size_of_a_tf_dataset():
    """Known when the batch dimension is static (Keras reads it from the element spec)."""
    import tensorflow as tf
    x, y = data()
    callback = EMCallback()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(40, drop_remainder=True)
    mlp().fit(dataset.prefetch(2), epochs=1, verbose=0, callbacks=[callback])
    hp = read_run(callback.run.local)['hparams']
    assert (hp['batch_size'], hp['steps_per_epoch']) == (40, 4)


def test_0_6_0b0_callbacks_log_fit_and_evaluate_into_the_given_run():
    """Local-layout spec §11: EMFitCallback(run) / EMEvalCallback(run)."""
    x, y = data()
    model = mlp()
    run = create_run(name='legacy')
    model.fit(x, y, batch_size=40, epochs=2, validation_split=0.25, verbose=0,
              callbacks=[EMFitCallback(run)])
    model.evaluate(x, y, verbose=0, callbacks=[EMEvalCallback(run)])
    assert run.status == 'Running'
    run.finish()
    files = read_run(run.local)
    assert files['hparams']['lossType'] == 'sparse_categorical_crossentropy'
    assert files['hparams']['optimizer']['learning_rate'] == pytest.approx(0.05)
    assert epochs(files['metrics']['train']) == epochs(files['metrics']['val']) == [1, 2]
    assert steps(files['metrics']['test']) == [6]


@pytest.mark.parametrize('kwargs, message', [
    ({'log_every_n_batches': 0}, 'log_every_n_batches'),
    ({'save_model': 'last'}, 'save_model'),
    ({'mode': 'auto'}, 'mode'),
])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EMCallback(**kwargs)


def test_a_given_run_excludes_create_run_arguments():
    run = create_run(name='given')
    with pytest.raises(ValueError, match='folder'):
        EMCallback(run, folder='x')
    run.finish()


@pytest.mark.timeout(320)
def test_torch_backend_fit_evaluate_and_interrupt(jobs):
    returncode, stderr, facts = jobs['torch'].result()
    assert returncode != 0 and 'KeyboardInterrupt' in stderr
    assert facts['backend'] == 'torch'
    assert facts['async_train_default'] is True  # EMCallback keeps Keras' async batch dispatch

    owned = read_run(facts['owned_run'])
    assert owned['metadata']['status'] == 'Complete'
    assert owned['hparams']['keras']['backend'] == 'torch'
    assert (owned['hparams']['batch_size'], owned['hparams']['validation_split']) == (20, 0.25)
    assert steps(owned['metrics']['train']) == steps(owned['metrics']['val']) == [6, 12]
    assert steps(read_run(facts['eval_run'])['metrics']['test']) == [12]  # after 2 epochs of 6 steps

    interrupted = read_run(glob.glob(str(jobs['torch'].run_dir / 'interrupted_*'))[0])
    assert interrupted['metadata']['status'] == 'Error'
    assert interrupted['metadata']['endTimestamp'] is not None
    assert epochs(interrupted['metrics']['train']) == [1, 2]  # nothing logged is lost


@pytest.mark.timeout(320)
def test_mirrored_strategy_records_distribution_and_global_batch(jobs):
    returncode, stderr, facts = jobs['mirrored'].result()
    assert returncode == 0, stderr[-3000:]
    run = read_run(facts['run'])
    assert run['metadata']['status'] == 'Complete'
    tf_info = run['hparams']['distributed']['tensorflow']
    assert (tf_info['strategy'], tf_info['replicas']) == ('MirroredStrategy', facts['replicas']) == (
        'MirroredStrategy', 2)
    assert (tf_info['global_batch_size'], tf_info['per_replica_batch_size']) == (32, 16)
    assert (tf_info['task_type'], tf_info['cluster_spec']) == (None, None)
    assert run['hparams']['batch_size'] == 32
    train = run['metrics']['train']
    assert steps(train) == [5, 10] and epochs(train) == [1, 2]  # 160 samples / global batch 32
    assert [e['value']['loss'] for e in train] == pytest.approx(facts['loss'])
    assert not math.isnan(train[-1]['value']['accuracy'])


def test_example_trains_digits_and_uploads_to_a_server(em_server):
    sys.path.insert(0, str(HERE.parent / 'examples'))
    try:
        import keras_digits
    finally:
        sys.path.pop(0)
    base_url, api_key, user = em_server
    run = keras_digits.main(['--epochs', '2', '--host', base_url, '--api-key', api_key,
                             '--folder', 'keras-example'])
    files = read_run(run.local)
    assert files['metadata']['status'] == 'Complete'
    assert epochs(files['metrics']['val']) == [1, 2] and len(files['metrics']['test']) == 1
    uploads = [r for r in files['metadata']['remote'] if r['action'] == 'upload']
    assert uploads and uploads[-1]['path'] == f'/{user}/keras-example/digits_mlp'
    assert [o['kind'] for o in files['metadata']['associations']['output']] == ['Artifact']


def test_owned_run_auto_uploads_with_the_given_upload_arguments(em_server, tmp_path, monkeypatch):
    from t9k import em
    base_url, api_key, user = em_server
    em.login(ais_host=base_url, api_key=api_key)
    try:
        x, y = data()
        callback = EMCallback(auto_upload=True, folder='keras-auto/sub', make_folder=True)
        mlp('auto_mlp').fit(x, y, epochs=2, verbose=0, callbacks=[callback])
        monkeypatch.setenv('EM_RUN_PARENT_DIR', str(tmp_path / 'downloaded'))
        downloaded = em.load_run(f'/{user}/keras-auto/sub/auto_mlp')
        downloaded.finish()
    finally:
        em.logout()
    files = read_run(downloaded.local)
    assert epochs(files['metrics']['train']) == [1, 2]  # the final state reached the server
    assert files['hparams']['batch_size'] == 32
