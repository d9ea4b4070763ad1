"""``torch.load(weights_only=True)`` with an explicit, opt-in allow-list of extra globals.

Never ``weights_only=False``: torch's restricted unpickler only builds tensors, plain containers
and the globals named here, so a crafted file cannot run code. Files that need other globals
(an ``argparse.Namespace`` or numpy scalars in Lightning's ``hyper_parameters``) are refused
with the exact names, which the user can allow with ``--allow-global NAME`` if they trust the file
(``torch.serialization.safe_globals``). A whole pickled ``nn.Module`` is refused outright: it can
only be rebuilt by running its code.
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from losslens.errors import LossLensError

#: ``--allow-global numpy`` expands to what numpy scalars, dtypes and small arrays pickle as.
NUMPY_GLOBALS = (
    "numpy._core.multiarray.scalar",
    "numpy._core.multiarray._reconstruct",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.dtypes.Float64DType",
    "numpy.dtypes.Float32DType",
    "numpy.dtypes.Float16DType",
    "numpy.dtypes.Int64DType",
    "numpy.dtypes.Int32DType",
    "numpy.dtypes.BoolDType",
)
#: Modules whose globals would let a file run commands; never allowed, even when named.
_DENIED = ("builtins.eval", "builtins.exec", "builtins.getattr", "builtins.__import__", "builtins.compile", "builtins.open")
_DENIED_MODULES = (
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "shutil",
    "importlib",
    "runpy",
    "pickle",
    "marshal",
    "ctypes",
    "code",
)


def resolve_globals(names: Iterable[str]) -> list[Any]:
    """The objects named ``module.qualname`` (as torch prints them); ``numpy`` is the numpy set.

    :raises LossLensError: a name cannot be imported, or names something that could run commands.
    """
    objects: list[Any] = []
    for raw in names:
        for name in NUMPY_GLOBALS if raw == "numpy" else (raw,):
            if is_denied(name):
                raise LossLensError(
                    f"--allow-global {name}: refused, it could run commands while loading",
                    hint="allow only data classes such as argparse.Namespace",
                )
            objects.append(_import(name))
    return objects


def is_denied(name: str) -> bool:
    """True for globals that could run commands or import code while unpickling."""
    return name in _DENIED or name.split(".")[0] in _DENIED_MODULES


def _import(name: str) -> Any:
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise LossLensError(
        f"--allow-global {name}: cannot import it", hint="write it as module.QualifiedName, as the refusal printed it"
    )


def needed_globals(path: Path) -> list[str]:
    """Globals a torch zip file needs beyond the default allow-list, read without unpickling."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip checkpoint: torch cannot list them without unpickling
        return []


def is_whole_module(names: list[str]) -> bool:
    """True when the file pickles an ``nn.Module`` itself (``torch.save(model)``) rather than weights."""
    return any(n.startswith(("torch.nn.modules.", "__main__.")) for n in names)


def load_weights_only(path: Path, allow_globals: Iterable[str] = ()) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with the named extra globals allowed.

    :raises LossLensError: the file needs a global that is not allowed (names it and the option),
        holds a whole pickled module, or is truncated / not a torch file.
    """
    where = str(path)
    allowed = resolve_globals(allow_globals)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        names = needed_globals(path)
        if is_whole_module(names):
            raise LossLensError(
                f"refused: the file is a whole pickled module ({names[0]}); rebuilding it would run its code",
                where=where,
                hint="save the weights instead: torch.save(model.state_dict(), path) or safetensors",
            ) from None
        if names and not any(is_denied(n) for n in names):
            flags = " ".join(f"--allow-global {n}" for n in names)
            raise LossLensError(
                f"refused: the file needs globals that are not weights ({', '.join(names)})",
                where=where,
                hint=f"if you trust the file, ingest with {flags} ([checkpoints] allow_globals in the spec); "
                "or save model.state_dict()",
            ) from None
        if not zipfile.is_zipfile(path) and not _starts_like_a_pickle(path):
            raise LossLensError(
                "cannot read the file: it is neither a torch zip archive nor a pickle",
                where=where,
                hint="the file is not a torch checkpoint or is corrupted; save it again with torch.save",
            ) from None
        first = next((n for n in names if is_denied(n)), None) or torch_reason(exc)
        raise LossLensError(
            f"refused: the file holds pickled objects that are not weights ({first})",
            where=where,
            hint="save a plain state_dict with torch.save(model.state_dict(), path), or use .safetensors",
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LossLensError(
            f"cannot read the file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'truncated'})",
            where=where,
            hint="the file is truncated or not a torch checkpoint; save it again",
        ) from None


#: Lines of torch's ``weights_only`` error that are boilerplate, not the reason; one of them advises
#: ``weights_only=False``, which LossLens must never pass on.
_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation", "WeightsUnpickler error:")


def torch_reason(exc: BaseException) -> str:
    """The line of torch's unpickling error that says what was refused, without torch's advice."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not line.startswith(_BOILERPLATE):
            return line
    return "unsupported object"


def _starts_like_a_pickle(path: Path) -> bool:
    """True when the file opens with a pickle PROTO opcode (torch's legacy, non-zip format)."""
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"
