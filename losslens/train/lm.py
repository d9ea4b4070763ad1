"""Train a tiny GPT-NeoX (Pythia architecture) language model and save Hugging Face checkpoints along
training: the runs of ``losslens demo --study lm``.

The text is generated in code (:func:`losslens.models.hf_tiny.generated_text`, a seeded toy language),
the tokenizer is a word-level ``tokenizers`` model trained on it, and the model is built from a
config written in code (:func:`losslens.models.hf_tiny.gpt_neox_config`). Each seed trains with AdamW
on the text's sequences in a seeded order; at every step in ``save_steps`` the model is written with
``save_pretrained`` (safetensors) into ``seed<S>/step<T>/`` together with ``tokenizer.json``, and a
sidecar ``seed<S>/step<T>.json`` beside the folder records seed, step and the setting
(``hparams.step``: one setting per saved step, its seeds the modes compared by CKA and connectivity).
A rerun finds folders whose sidecar has the same config hash and skips them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from losslens.errors import LossLensError
from losslens.train.outputs import OnEvent, RunRecord, TrainResult, config_sha, plain, write_spec

MODEL_FACTORY = "losslens.models:hf_causal_lm"
PROBLEM_FACTORY = "losslens.problems:causal_lm"


@dataclass(frozen=True)
class LMConfig:
    sentences: int = 3000
    vocab_size: int = 64
    hidden_size: int = 32
    layers: int = 2
    heads: int = 4
    seq_len: int = 32
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.01
    save_steps: tuple[int, ...] = (40, 400)
    eval_batch_size: int = 8


#: The ``--quick`` demo's training: fewer sentences, 200 steps.
QUICK = LMConfig(sentences=1500, save_steps=(20, 200))


def _folder(out: Path, seed: int, step: int) -> Path:
    return out / f"seed{seed}" / f"step{step}"


def _sidecar(folder: Path) -> Path:
    return folder.with_name(folder.name + ".json")


def _finished(folder: Path, sha: str) -> dict[str, Any] | None:
    side = _sidecar(folder)
    if not (side.is_file() and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()):
        return None
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError:
        return None
    return meta if meta.get("config_sha") == sha else None


def lm_config(config: LMConfig | str | None) -> LMConfig:
    """``config`` itself, :data:`QUICK` for ``"quick"``, the defaults for None.

    :raises LossLensError: for any other string.
    """
    if isinstance(config, str):
        if config != "quick":
            raise LossLensError(f"unknown LM configuration {config!r}", where="train lm", hint='use "quick", or pass an LMConfig')
        return QUICK
    return config or LMConfig()


def train_lm(
    out: Path,
    seeds: tuple[int, ...] = (0, 1, 2),
    config: LMConfig | str | None = None,
    *,
    name: str | None = None,
    on_event: OnEvent = lambda *a, **k: None,
) -> TrainResult:
    """Train each seed, saving Hugging Face folders at ``config.save_steps``, and write ``out/spec.toml``.

    ``config``: an :class:`LMConfig`, ``"quick"`` (:data:`QUICK`) or None (the defaults).

    :raises LossLensError: no seeds or no save steps, or transformers/tokenizers are not installed.
    """
    from losslens.models.hf import hf_causal_lm, require_transformers
    from losslens.models.hf_tiny import generated_text, gpt_neox_config, save_folder, word_tokenizer
    from losslens.problems.causal_lm import causal_lm

    config = lm_config(config)
    if not seeds or not config.save_steps:
        raise LossLensError("no runs requested", where="train lm", hint="give at least one seed and one save step")
    require_transformers("train lm").utils.logging.disable_progress_bar()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text_path = out / "text.txt"
    text = generated_text(config.sentences, seed=0)
    if not text_path.is_file() or text_path.read_text() != text:
        text_path.write_text(text)
    tokenizer = word_tokenizer(text, config.vocab_size)
    vocab = tokenizer.get_vocab_size()
    tok_folder = out / "tokenizer"
    tok_folder.mkdir(exist_ok=True)
    tokenizer.save(str(tok_folder / "tokenizer.json"))
    problem_kwargs: dict[str, Any] = {
        "text": str(text_path.resolve()),
        "tokenizer": str(tok_folder.resolve()),
        "seq_len": config.seq_len,
        "batch_size": config.eval_batch_size,
    }
    problem = causal_lm(**problem_kwargs)
    train = problem.data["train"]
    model_config = gpt_neox_config(vocab, config.hidden_size, config.layers, config.heads, max_positions=config.seq_len)
    steps = max(config.save_steps)
    on_event("sweep_start", total=len(seeds))
    records: list[RunRecord] = []
    for seed in dict.fromkeys(seeds):
        shas = {
            s: config_sha({"kind": "lm", "seed": seed, "step": s, "config": plain(asdict(config))}) for s in config.save_steps
        }
        found = {s: meta for s in config.save_steps if (meta := _finished(_folder(out, seed, s), shas[s])) is not None}
        if len(found) == len(set(config.save_steps)):
            for s, meta in found.items():
                records.append(_record(_folder(out, seed, s), meta, skipped=True))
            on_event("run_done", record=records[-1], label=f"seed {seed}")
            continue
        on_event("run_start", label=f"seed {seed}", total=steps)
        torch.manual_seed(seed)
        model = hf_causal_lm(model_config).train()
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        order = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        perm = torch.randperm(len(train), generator=order)
        cursor = 0
        for step in range(1, steps + 1):
            if cursor + config.batch_size > len(perm):
                perm, cursor = torch.randperm(len(train), generator=order), 0
            batch = train[perm[cursor : cursor + config.batch_size]]
            cursor += config.batch_size
            loss = model(batch, labels=batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            on_event("advance", n=1, loss=float(loss.detach()))
            if step in config.save_steps:
                model.eval()
                state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
                with torch.no_grad():
                    train_loss, _ = problem.loss_and_error(model, state, "train")
                    test_loss, _ = problem.loss_and_error(model, state, "test")
                model.train()
                folder = _folder(out, seed, step)
                meta = {
                    "name": f"seed{seed}-step{step}",
                    "seed": seed,
                    "step": step,
                    "hparams": {"step": step},
                    "metrics": {"train_loss": train_loss, "test_loss": test_loss},
                    "wall_time_s": round(time.perf_counter() - start, 3),
                    "config_sha": shas[step],
                    "train_config": plain(asdict(config)),
                }
                save_folder(model, folder, tokenizer)
                _sidecar(folder).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
                records.append(_record(folder, meta, skipped=False))
        on_event("run_done", record=records[-1], label=f"seed {seed}")
    spec = write_spec(
        out / "spec.toml",
        name=name or out.resolve().name,
        description=f"Tiny GPT-NeoX on a generated toy language, seeds {list(dict.fromkeys(seeds))}, "
        f"saved at steps {list(config.save_steps)}.",
        model=(MODEL_FACTORY, {}),
        problem=(PROBLEM_FACTORY, problem_kwargs),
        checkpoints=[r.checkpoint for r in records],
        setting_keys=["step"],
    )
    return TrainResult(spec, records)


def _record(folder: Path, meta: dict[str, Any], skipped: bool) -> RunRecord:
    return RunRecord(
        folder,
        _sidecar(folder),
        int(meta["seed"]),
        meta["hparams"],
        meta["metrics"],
        float(meta["wall_time_s"]),
        int(meta["step"]),
        skipped=skipped,
    )
