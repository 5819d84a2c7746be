"""One worker of tests/test_multiworker.py: a tiny `tfnst.networks.train` run.

    TF_CONFIG=... python -m tests.multiworker_worker '{"out": "...", ...}'

With ``"strategy": "multiworker"`` the process builds a
`tf.distribute.MultiWorkerMirroredStrategy` from TF_CONFIG (first thing, before other
TensorFlow work, as TF requires); with ``"none"`` it trains on one device. It writes a
JSON report (the epochs begun, each epoch's mean loss, this worker's task) and the final
weights (``.npz``) to ``out``. ``"crash_after_epoch": N`` raises after epoch N ends (every
worker does, so the cluster stops together); ``"backup": DIR`` adds a
`keras.callbacks.BackupAndRestore` there.
"""

import json
import os
import sys


def main() -> int:
    spec = json.loads(sys.argv[1])
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy() if spec["strategy"] == "multiworker" else None
    import keras
    import numpy as np

    keras.config.disable_traceback_filtering()  # a failing worker shows where

    from tfnst.networks import train

    losses, begun = [], []

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == spec.get("crash_after_epoch"):
                raise RuntimeError("power cut")

    callbacks = [
        keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda e, logs: begun.append(e),
            on_epoch_end=lambda e, logs: losses.append(float(logs["loss"])),
        )
    ]
    if spec.get("backup"):
        callbacks.insert(0, keras.callbacks.BackupAndRestore(spec["backup"]))
    if spec.get("crash_after_epoch") is not None:
        callbacks.append(Crash())
    report = {
        "task": json.loads(os.environ.get("TF_CONFIG", "{}")).get("task"),
        "replicas": strategy.num_replicas_in_sync if strategy else 1,
    }
    try:
        model = train(
            spec["style"], spec["images"], strategy=strategy, callbacks=callbacks, verbose=0, **spec["options"]
        )
        np.savez(spec["out"] + ".npz", *model.get_weights())
    except RuntimeError as e:
        if "power cut" not in str(e):
            raise
        report["crashed"] = True
    with open(spec["out"], "w") as f:
        json.dump({**report, "epochs": begun, "losses": losses}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
