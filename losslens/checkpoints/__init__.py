"""Reading every checkpoint layout people have, without running pickled code.

One entry point, :func:`read_checkpoint` (a file or folder → :class:`CheckpointFile`: tensors,
JSON-able metadata, the recognised ``layout`` and notes), and :func:`fit_state_dict` (prefixes,
key/shape check and the dtype rule against the model a spec builds). One module per layout:

========================  =========================================================================
layout                    what is read
========================  =========================================================================
``state-dict``            ``torch.save(model.state_dict())``; ``{"state_dict", "meta"}`` bundles
``training-loop``         ``{"epoch", "model_state_dict", "optimizer_state_dict", "loss"}``
``lightning``             Lightning ``.ckpt``: ``state_dict`` + ``hyper_parameters`` + ``global_step``
``timm``                  ``*.pth.tar``: ``state_dict`` / ``state_dict_ema``, ``args`` Namespace
``safetensors``           one ``.safetensors`` file and its metadata header
``huggingface``           folder: ``config.json`` + ``model.safetensors`` / shards + index / ``pytorch_model.bin``
``mlflow``                folder: ``MLmodel`` + ``state_dict.pth`` (a pickled ``data/model.pth`` is refused)
========================  =========================================================================

``docs/checkpoints.md`` lists each with what is refused and why.
"""

from losslens.checkpoints.base import CheckpointFile, jsonable
from losslens.checkpoints.huggingface import read_hf_folder
from losslens.checkpoints.matching import check_state_dict, fit_state_dict
from losslens.checkpoints.metadata import checkpoint_metadata, read_sidecar, sidecar_path
from losslens.checkpoints.mlflow import read_mlflow_folder
from losslens.checkpoints.reader import checkpoint_sha256, checkpoint_size, read_checkpoint
from losslens.checkpoints.safe_load import NUMPY_GLOBALS, load_weights_only

LAYOUTS = ("state-dict", "training-loop", "lightning", "timm", "safetensors", "huggingface", "mlflow")

__all__ = [
    "LAYOUTS",
    "NUMPY_GLOBALS",
    "CheckpointFile",
    "check_state_dict",
    "checkpoint_metadata",
    "checkpoint_sha256",
    "checkpoint_size",
    "fit_state_dict",
    "jsonable",
    "load_weights_only",
    "read_checkpoint",
    "read_hf_folder",
    "read_mlflow_folder",
    "read_sidecar",
    "sidecar_path",
]
