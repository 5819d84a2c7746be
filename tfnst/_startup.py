"""How TensorFlow is first imported: quietly for the ``tfnst`` command, as is for a library user.

`tfnst/__init__.py` imports its submodules eagerly, so that a bare ``import tfnst``
registers tfnst's Keras classes (Keras 3 finds a custom class of a saved model only
through its registry, and imports modules only for its own packages), and with them
TensorFlow. TF 2.21 writes its C++ start-up lines (CUDA probing, ``cpu_feature_guard``)
through absl before it reads TF_CPP_MIN_LOG_LEVEL, so the only way to hide them is to
point file descriptor 2 at /dev/null during the import.

That suits the command line, whose stderr is meant for tfnst's own one-line messages.
It would not suit a program or notebook that imports tfnst: hiding its stderr would
hide a broken CUDA install from the one person who can fix it. So `quiet_if_command`
hides them only when the running program is the tfnst command (its console script, or
``python -m tfnst``), decided from the command line the interpreter was started with,
which is known before anything is imported; and not at all when TFNST_TF_LOGS=1.
"""

from __future__ import annotations

import os
import sys

COMMAND = "tfnst"
# The console script pip writes (``tfnst``; ``tfnst.exe`` on Windows) and the modules
# ``python -m`` runs as the command.
SCRIPT_NAMES = (COMMAND, f"{COMMAND}.exe", f"{COMMAND}-script.py")
MAIN_MODULES = (COMMAND, f"{COMMAND}.cli", f"{COMMAND}.__main__")


def running_as_command(argv: list[str] | None = None, orig_argv: list[str] | None = None) -> bool:
    """Whether this process is the ``tfnst`` command rather than a program importing tfnst.

    ``argv`` (default ``sys.argv``) starts with the script's path for a console script.
    For ``python -m tfnst`` it starts with "-m" while the package is being imported (for
    any module run with -m), and the module's name is then found in ``orig_argv``
    (default ``sys.orig_argv``, the interpreter's own command line), just before the
    arguments ``argv`` holds: ``python [options] -m tfnst ARGS`` or ``-mtfnst ARGS``.
    """
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    if not argv:
        return False
    if argv[0] != "-m":
        return argv[0].replace("\\", "/").rsplit("/", 1)[-1] in SCRIPT_NAMES  # / or \ (Windows)
    k = len(orig_argv) - len(argv)
    if k < 1:
        return False
    name = orig_argv[k]
    if name.startswith("-"):  # -mtfnst, or flags and m joined: -Bmtfnst
        name = name.partition("m")[2]
    return name in MAIN_MODULES


def import_tensorflow_quietly() -> None:
    """Load TensorFlow with its C++ start-up lines hidden (stderr closed at the
    file-descriptor level for the import and the device set-up only)."""
    if "tensorflow" in sys.modules or os.environ.get("TFNST_TF_LOGS"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.constant(0.0).numpy()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def quiet_if_command() -> None:
    """`import_tensorflow_quietly` when this process is the tfnst command; else nothing."""
    if running_as_command():
        import_tensorflow_quietly()
