"""Layout ``mlflow``: an MLflow model folder (``MLmodel`` + ``data/``).

MLflow's default ``mlflow.pytorch.log_model`` pickles the whole module into ``data/model.pth``;
rebuilding it would run the module's code, so it is refused with the fix. Weights logged with
``mlflow.pytorch.log_state_dict`` (a ``state_dict.pth`` beside ``MLmodel`` or under ``data/``) are
a plain state dict and are read through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

from losslens.checkpoints.base import CheckpointFile
from losslens.checkpoints.plain import split
from losslens.checkpoints.safe_load import load_weights_only
from losslens.errors import LossLensError

NAME = "mlflow"
_STATE_FILES = ("state_dict.pth", "data/state_dict.pth")


def matches(folder: Path) -> bool:
    return (folder / "MLmodel").is_file()


def read_mlflow_folder(folder: Path, allow_globals: tuple[str, ...] = ()) -> CheckpointFile:
    """The ``state_dict.pth`` of an MLflow folder.

    :raises LossLensError: the folder only holds a pickled whole module (``data/model.pth``), or no
        weights at all.
    """
    folder = Path(folder)
    for name in _STATE_FILES:
        if (folder / name).is_file():
            notes: list[str] = []
            state, meta = split(load_weights_only(folder / name, allow_globals), str(folder / name), notes)
            meta["weights"] = name
            return CheckpointFile(folder, "torch", state, meta, layout=NAME, notes=tuple(notes))
    if (folder / "data" / "model.pth").is_file():
        raise LossLensError(
            "refused: MLflow saved a whole pickled module (data/model.pth); loading it would run its code",
            where=str(folder),
            hint="log the weights instead with mlflow.pytorch.log_state_dict(model.state_dict(), path) and ingest state_dict.pth",
        )
    raise LossLensError("no weights in the MLflow folder", where=str(folder), hint="log them with mlflow.pytorch.log_state_dict")
