"""Memory on purpose: a refusal names a setting that fits, and re-running with it is not refused.

Oracle: the independent re-run. For a grid of budgets on real tiny transformers models (GPT-NeoX, the
Pythia architecture, and GPT-2 with tied embeddings, both saved with ``save_pretrained`` and ingested),
every refusal is one line; where it names options, ``compute`` re-run with them under the same budget
is not refused; where it says nothing fits, re-running with the least budget and options it names is
not refused. The grid must reach every kind of fix (steps, data, a smaller block, nothing fits), so the
test cannot pass on one kind alone. Closed forms: the Lanczos basis term and the bisection.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

from losslens.memory import GIB, gb_up, hessian_estimate, largest_passing

transformers = pytest.importorskip("transformers")


def _gpt_neox() -> torch.nn.Module:
    from losslens.models.hf import hf_causal_lm
    from losslens.models.hf_tiny import gpt_neox_config

    torch.manual_seed(0)
    return hf_causal_lm(gpt_neox_config(vocab_size=48, hidden_size=16, layers=2, heads=2))


def _gpt2() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=48,
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=64,
        resid_pdrop=0,
        embd_pdrop=0,
        attn_pdrop=0,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config).eval()


MODELS = {"gpt_neox": _gpt_neox, "gpt2": _gpt2}


@pytest.fixture(scope="module", params=sorted(MODELS))
def catalog(request, tmp_path_factory) -> tuple[Path, int]:
    """A catalog holding one checkpoint of the model, and its parameter count."""
    from losslens.ingest import ingest
    from losslens.models.hf_tiny import generated_text, save_folder, word_tokenizer

    root = tmp_path_factory.mktemp(request.param)
    text = generated_text(300, seed=1)
    model = MODELS[request.param]()
    folder = save_folder(model, root / "run" / "step10", word_tokenizer(text, vocab_size=48))
    (root / "text.txt").write_text(text)
    spec = root / "lm.toml"
    spec.write_text(
        f'name = "{request.param}"\n\n[model]\nfactory = "hf_causal_lm"\n\n[problem]\nfactory = "causal_lm"\n'
        f'kwargs = {{ text = "{root / "text.txt"}", tokenizer = "{folder}", seq_len = 32, batch_size = 8 }}\n\n'
        '[checkpoints]\npaths = ["run/step*"]\n'
    )
    db = root / "catalog" / "losslens.db"
    report = ingest(spec, db)
    assert report.count("added") == 1, [o.error for o in report.outcomes]
    return db, sum(p.numel() for p in model.parameters())


def _options(flags: str) -> list[tuple[str, str | None]]:
    """``--a 1 --b`` as compute's (name, value) pairs."""
    words, out = shlex.split(flags), []
    for i, word in enumerate(words):
        if word.startswith("--"):
            value = words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else None
            out.append((word[2:], value))
    return out


def _merged(base: list[tuple[str, str | None]], changes: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    names = {k for k, _ in changes}
    return [(k, v) for k, v in base if k not in names] + changes


def _refusal_grid(db: Path, metric: str, base: list, budgets: list[float]) -> tuple[set[str], list[float]]:
    """Run ``metric`` under each budget; check each refusal and its re-run; return the kinds of fix seen and the
    least budgets named where nothing fitted."""
    from losslens.jobs import compute

    kinds, leasts = set(), []
    for gb in budgets:
        opts = [*base, ("memory-gb", repr(gb))]
        report = compute([metric], opts, catalog_path=db, force=True)
        if report.failed == 0:
            kinds.add("fits")
            continue
        error = report.metrics[0].failures[0][1]
        assert "\n" not in error and error.count(" — ") == 1, error
        assert "more than --memory-gb" in error, error
        hint = error.split(" — ", 1)[1]
        if hint.startswith("use "):
            changes = _options(hint[4 : hint.rindex(" (about ")])
            kinds.update(k for k, _ in changes)
            rerun = _merged(opts, changes)
        else:
            match = re.search(r"the least found is about [^:]+: --memory-gb (\S+)(?: with (.*))?$", hint)
            assert hint.startswith("no setting of ") and match, error
            kinds.add("nothing fits")
            leasts.append(float(match.group(1)))
            assert leasts[-1] > gb
            rerun = _merged(opts, [("memory-gb", match.group(1)), *_options(match.group(2) or "")])
        again = compute([metric], rerun, catalog_path=db, force=True)
        assert again.failed == 0, (error, rerun, again.metrics[0].failures)
    return kinds, leasts


@pytest.mark.slow
def test_hessian_refusal_names_a_setting_that_fits(catalog):
    """Budgets from half the weights to past the full estimate: every refusal is one line and its suggestion
    (or its least budget) re-runs without a refusal; the grid reaches steps, data, blocks and nothing-fits."""
    db, n = catalog
    weights = n * 4 / GIB
    base = [("k", "2"), ("trace-probes", "0"), ("esd-runs", "1")]
    budgets = [weights * 2**i for i in (-1, 0.2, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12)]
    kinds, _ = _refusal_grid(db, "hessian", base, budgets)
    assert {"nothing fits", "max-iter", "esd-steps", "batch-size", "params", "fits"} <= kinds, kinds


@pytest.mark.slow
def test_landscape_refusal_names_a_setting_that_fits(catalog):
    """As for the Hessian, over --batches, --batch-size and --dims (the points per call shrink on their own).
    One direction fewer saves 3·n·4 bytes (the directions term), so a budget 1.5·n·4 bytes above the least
    one-direction setting needs --dims 1."""
    db, n = catalog
    weights = n * 4 / GIB
    base = [("steps", "3"), ("batches", "2")]
    budgets = [weights * 2**i for i in (-1, 0.5, 2, 3, 4, 5, 6, 8)]
    kinds, leasts = _refusal_grid(db, "landscape", base, budgets)
    assert leasts
    more, _ = _refusal_grid(db, "landscape", base, [min(leasts) + 1.5 * weights])
    kinds |= more
    assert {"nothing fits", "batches", "dims", "fits"} <= kinds, kinds


def test_basis_term_is_capped_by_the_parameters():
    """Closed form: a Lanczos run over m parameters takes at most m steps, so the basis is min(steps, m)·m·8."""
    assert hessian_estimate(10, 5, 4, 0, 300).terms["Lanczos basis"] == 5 * 5 * 8
    assert hessian_estimate(1000, 400, 4, 0, 300).terms["Lanczos basis"] == 300 * 400 * 8


def test_largest_passing_is_the_last_true():
    """Bisection against a linear scan over monotone predicates."""
    for limit in range(0, 20):
        assert largest_passing(1, 17, lambda x, limit=limit: x <= limit) == (min(limit, 17) if limit >= 1 else None)


def test_gb_up_never_rounds_below():
    for size in (1, 999, 123_456, 7 * GIB + 3, 10**6 + 1):
        assert float(gb_up(size)) * GIB >= size
