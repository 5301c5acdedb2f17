"""Keras training jobs that need a process of their own, run by tests/test_keras.py.

``python keras_job.py torch`` (with ``KERAS_BACKEND=torch``): a fit and an evaluate that complete,
then a fit interrupted by ``KeyboardInterrupt`` in its second epoch, which ends the process.
``python keras_job.py mirrored``: a fit under ``tf.distribute.MirroredStrategy`` over two logical
CPU devices. Each prints one JSON line of facts only the process itself can see.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def data(n: int = 160) -> tuple:
    rng = np.random.default_rng(0)
    x = rng.random((n, 8)).astype('float32')
    return x, (x[:, 0] + x[:, 1] > 1).astype('int32')


def mlp(keras, name: str):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation='relu'),
                              keras.layers.Dense(2, activation='softmax')], name=name)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss='sparse_categorical_crossentropy',
                  metrics=['accuracy'])
    return model


def interrupt_in_epoch_2(epoch: int, logs: dict) -> None:
    """Raises KeyboardInterrupt at the end of the second epoch, as Ctrl-C would."""
    if epoch == 1:
        raise KeyboardInterrupt


def torch_backend() -> None:
    import keras
    from t9k.em.keras import EMCallback
    from t9k_em_core.run import create_run

    x, y = data()
    facts = {'backend': keras.backend.backend(),
             'async_train_default': keras.callbacks.CallbackList([EMCallback()])._async_train}
    model = mlp(keras, 'torch_mlp')
    owned = EMCallback()
    model.fit(x, y, batch_size=20, epochs=2, validation_split=0.25, verbose=0, callbacks=[owned])
    facts['owned_run'] = owned.run.local
    run = create_run(name='torch_eval')
    model.evaluate(x, y, batch_size=40, verbose=0, callbacks=[EMCallback(run)])
    run.finish()
    facts['eval_run'] = run.local
    print(json.dumps(facts), flush=True)
    interrupt = keras.callbacks.LambdaCallback(on_epoch_end=interrupt_in_epoch_2)
    mlp(keras, 'interrupted').fit(x, y, batch_size=20, epochs=5, verbose=0,
                                  callbacks=[EMCallback(), interrupt])


def mirrored() -> None:
    import tensorflow as tf
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from t9k.em.keras import EMCallback

    strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
    with strategy.scope():
        model = mlp(keras, 'mirrored_mlp')
    x, y = data()
    callback = EMCallback()
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback])
    print(json.dumps({'run': callback.run.local, 'loss': history.history['loss'],
                      'replicas': strategy.num_replicas_in_sync}), flush=True)


if __name__ == '__main__':
    {'torch': torch_backend, 'mirrored': mirrored}[sys.argv[1]]()
