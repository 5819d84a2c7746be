"""`import tfnst` is all a program needs to load what tfnst saved, and it leaves stderr
alone; the `tfnst` command hides TensorFlow's C++ start-up lines (tfnst/_startup.py).

Each check of a bare import runs in a fresh interpreter that does only what the README
shows: in this process every tfnst module is already imported, so Keras' registry would
find tfnst's classes whatever `tfnst/__init__.py` did.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import tfnst
from tests.conftest import small
from tfnst._startup import running_as_command

ROOT = Path(tfnst.__file__).resolve().parent.parent  # the tfnst these tests import
STYLE = ROOT / "examples" / "starry_night.jpg"
# TensorFlow's C++ start-up lines: CUDA probing, CPU features.
TF_START_UP = ("cudart_stub", "cpu_feature_guard", "cuda_platform", "cuInit", "cuda_dnn", "cuda_blas")


def fresh(code: str, *args, **kwargs) -> subprocess.CompletedProcess:
    """``code`` in a new interpreter that imports the tfnst under test."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("TFNST_TF_LOGS", None)
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=kwargs.pop("cwd", None),
        **kwargs,
    )


def test_a_trained_network_loads_after_a_bare_import(tmp_path):
    # Written as `tfnst train` writes it (a trained one is also compiled with
    # tfnst.PerceptualLoss: the next test loads that).
    model = tfnst.networks.StyleTransformer(width=4, depth=1, seed=3)
    path = tfnst.networks.save_network(model, tmp_path / "net.keras")
    images = np.random.default_rng(0).random((2, 24, 20, 3)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    r = fresh(
        """
        import sys
        import numpy as np
        import tfnst, keras
        m = keras.saving.load_model(sys.argv[1])
        np.save(sys.argv[2], m(np.load(sys.argv[3])))
        """,
        path,
        tmp_path / "out.npy",
        tmp_path / "images.npy",
    )
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), model(images).numpy())


@pytest.mark.slow
def test_a_model_compiled_with_perceptual_loss_loads_after_a_bare_import(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.random((2, 32, 32, 3)).astype(np.float32)
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid")(inputs))
    model.compile(
        optimizer="adam",
        loss=tfnst.PerceptualLoss(
            tfnst.build_feature_model(["block1_conv1", "block2_conv1"]),
            small("starry_night.jpg", 32),
            content_layers=["block2_conv1"],
            style_layers=["block1_conv1"],
        ),
    )
    model.fit(images, images, batch_size=2, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "images.npy", images)
    r = fresh(
        """
        import sys
        import numpy as np
        import tfnst, keras
        m = keras.saving.load_model(sys.argv[1])
        x = np.load(sys.argv[2])
        print(repr(m.evaluate(x, x, batch_size=2, verbose=0)))
        """,
        tmp_path / "model.keras",
        tmp_path / "images.npy",
    )
    assert r.returncode == 0, r.stderr
    loss = float(r.stdout.strip().splitlines()[-1])
    assert loss == pytest.approx(model.evaluate(images, images, batch_size=2, verbose=0), rel=1e-6)


def test_a_library_import_leaves_stderr_alone():
    # A notebook on a GPU machine must see TensorFlow's CUDA errors: no descriptor of
    # stderr redirected, no TF log level set by tfnst.
    r = fresh("""
        import os
        calls, dup2 = [], os.dup2
        os.dup2 = lambda *a, **k: (calls.append(a), dup2(*a, **k))[1]
        import tfnst
        print(calls, os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
        """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[] None"


def tfnst_script() -> Path:
    script = Path(sys.executable).parent / "tfnst"
    if not script.is_file():
        pytest.skip("no tfnst console script beside this Python (pip install -e .)")
    return script


@pytest.mark.slow
@pytest.mark.parametrize("how", ["console script", "python -m tfnst"])
def test_the_command_hides_tensorflows_start_up_lines(tmp_path, how):
    command = [str(tfnst_script())] if how == "console script" else [sys.executable, "-m", "tfnst"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TFNST_TF_LOGS", None)
    # A bad option: its one line is all of stderr (a run's progress lines vary).
    r = subprocess.run(
        [*command, "texture", str(STYLE), "-o", str(tmp_path / "t.png"), "--size", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("tfnst: error:") and r.stderr.count("\n") == 1, r.stderr
    assert not any(marker in r.stderr for marker in TF_START_UP)


@pytest.mark.parametrize(
    "argv, orig_argv, expected",
    [
        (["/venv/bin/tfnst", "stylize"], ["/venv/bin/python", "/venv/bin/tfnst", "stylize"], True),
        (["C:\\venv\\Scripts\\tfnst.exe", "-h"], ["python", "C:\\venv\\Scripts\\tfnst.exe", "-h"], True),
        # While `python -m` imports the package, argv[0] is "-m" for any module.
        (["-m", "stylize"], ["python", "-m", "tfnst", "stylize"], True),
        (["-m", "x"], ["python", "-W", "ignore", "-Bm", "tfnst", "x"], True),
        (["-m"], ["python", "-mtfnst.cli"], True),
        (["-m", "-q"], ["python", "-m", "pytest", "-q"], False),
        (["-m", "tfnst"], ["python", "-m", "tools.side_by_side", "tfnst"], False),
        (["-c", "tfnst"], ["python", "-c", "import tfnst", "tfnst"], False),
        (["notebook.py"], ["python", "notebook.py"], False),
        ([""], ["python"], False),  # the interactive interpreter
        ([], [], False),
    ],
)
def test_what_counts_as_the_command(argv, orig_argv, expected):
    assert running_as_command(argv, orig_argv) is expected
