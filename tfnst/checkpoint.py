"""Checkpoints of a run: optimizer state, iteration and what the run was, in one .npz.

Written atomically, so an interruption while saving leaves the previous checkpoint.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfnst.atomic import atomic_write
from tfnst.errors import TfnstError

FORMAT = 1


@dataclass
class Checkpoint:
    optimizer: str
    iteration: int
    state: dict[str, np.ndarray]
    meta: dict  # what must match to resume: options and a digest of the inputs
    scale: int = 0  # which coarse-to-fine scale (0 = the coarsest, or the only one)


def save_checkpoint(path, checkpoint: Checkpoint) -> None:
    path = Path(path)
    arrays = {f"state/{k}": v for k, v in checkpoint.state.items()}
    header = {
        "format": FORMAT,
        "optimizer": checkpoint.optimizer,
        "iteration": checkpoint.iteration,
        "meta": checkpoint.meta,
        "scale": checkpoint.scale,
    }
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise TfnstError(f"{path}: no checkpoint to resume from")
    try:
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(npz["header"].tobytes().decode())
            state = {k[len("state/") :]: npz[k] for k in npz.files if k.startswith("state/")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise TfnstError(f"{path} is not a readable tfnst checkpoint ({e})") from None
    if header.get("format") != FORMAT:
        raise TfnstError(f"{path}: checkpoint format {header.get('format')} is not supported")
    return Checkpoint(header["optimizer"], int(header["iteration"]), state, header["meta"], int(header.get("scale", 0)))
