"""Hugging Face causal LMs: the model factory and the ``causal_lm`` problem.

Oracles: transformers' own ``from_pretrained`` model and its ``model(input_ids, labels=...).loss``;
the ``tokenizers`` library's own encoding; dense Hessians by ``torch.autograd.functional.hessian``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from losslens.errors import LossLensError
from losslens.models.hf import align_state_dict, hf_causal_lm, read_config, tied_parameter_names
from losslens.models.hf_tiny import generated_text, gpt_neox_config, save_folder, word_tokenizer
from losslens.problems.causal_lm import causal_lm


def make_folder(path: Path, seed: int = 0, tie: bool = False, **config) -> Path:
    """A tiny random GPT-NeoX saved with ``save_pretrained`` plus a word-level tokenizer trained in code."""
    text = generated_text(300, seed=1)
    tok = word_tokenizer(text, vocab_size=48)
    torch.manual_seed(seed)
    model = hf_causal_lm(gpt_neox_config(vocab_size=48, hidden_size=16, layers=2, heads=2, tie_word_embeddings=tie, **config))
    save_folder(model, path, tok)
    (path.parent / "text.txt").write_text(text)
    return path


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("lm") / "step100")


def reference_model(folder: Path):
    """transformers' own loader: the oracle our rebuild is compared with."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", local_files_only=True).eval()


def our_model(folder: Path):
    from safetensors.torch import load_file

    model = hf_causal_lm(str(folder))
    model.load_state_dict(align_state_dict(model, load_file(folder / "model.safetensors")))
    return model


def test_loss_equals_transformers_loss(lm_folder):
    """Oracle: transformers' from_pretrained model and its own ``labels=`` loss, batch by batch."""
    problem = causal_lm(text=str(lm_folder.parent / "text.txt"), tokenizer=str(lm_folder), seq_len=16, batch_size=4)
    ours = our_model(lm_folder)
    ref = reference_model(lm_folder)
    state = {**dict(ours.named_parameters()), **dict(ours.named_buffers())}
    n = 0
    for batch in problem.batches("train"):
        with torch.no_grad():
            expected = ref(batch, labels=batch).loss
            got = problem.loss(ours, state, batch)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
        n += 1
    assert n == math.ceil(len(problem.data["train"]) / 4)


def test_perplexity_matches_transformers(lm_folder):
    """Oracle: exp of transformers' token-weighted mean loss over each split; accuracy from its logits."""
    problem = causal_lm(text=str(lm_folder.parent / "text.txt"), tokenizer=str(lm_folder), seq_len=16, batch_size=5)
    ours = our_model(lm_folder)
    ref = reference_model(lm_folder)
    rows = {(s, k): v for s, k, v in problem.performance(ours, {**dict(ours.named_parameters()), **dict(ours.named_buffers())})}
    for split in ("train", "test"):
        seqs = problem.data[split]
        with torch.no_grad():
            out = ref(seqs, labels=seqs)  # one batch: its loss is the mean over every predicted token
        assert rows[(split, "perplexity")] == pytest.approx(math.exp(float(out.loss)), rel=1e-5)
        right = (out.logits[:, :-1].argmax(-1) == seqs[:, 1:]).double().mean()
        assert rows[(split, "accuracy")] == pytest.approx(float(right), abs=1e-12)


def test_sequences_are_the_tokenizers_ids_in_order(lm_folder, tmp_path):
    """Oracle: the tokenizers library's encoding of the file, cut in order; .npy and .bin give the same sequences."""
    from tokenizers import Tokenizer

    text_path = lm_folder.parent / "text.txt"
    ids = Tokenizer.from_file(str(lm_folder / "tokenizer.json")).encode(text_path.read_text(), add_special_tokens=False).ids
    problem = causal_lm(text=str(text_path), tokenizer=str(lm_folder), seq_len=10, test_fraction=0.25)
    n = len(ids) // 10
    n_test = math.ceil(0.25 * n)
    expected = torch.tensor(ids[: n * 10]).reshape(n, 10)
    assert torch.equal(torch.cat([problem.data["train"], problem.data["test"]]), expected)
    assert len(problem.data["test"]) == n_test
    np.save(tmp_path / "ids.npy", np.asarray(ids, dtype=np.int32))
    np.asarray(ids, dtype="<u2").tofile(tmp_path / "ids.bin")
    for kwargs in ({"tokens": str(tmp_path / "ids.npy")}, {"tokens": str(tmp_path / "ids.bin"), "token_dtype": "uint16"}):
        other = causal_lm(seq_len=10, test_fraction=0.25, **kwargs)
        assert torch.equal(other.data["train"], problem.data["train"])
        assert torch.equal(other.data["test"], problem.data["test"])


def test_max_sequences_and_batches_are_fixed(lm_folder):
    """Closed form: the first N sequences, split at the end, batches in file order."""
    problem = causal_lm(text=str(lm_folder.parent / "text.txt"), tokenizer=str(lm_folder), seq_len=8, max_sequences=10)
    assert len(problem.data["train"]) == 9 and len(problem.data["test"]) == 1
    batches = list(problem.batches("train", batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 1]
    assert torch.equal(torch.cat(batches), problem.data["train"])


def test_auto_map_refused(tmp_path):
    """A config that needs remote code is refused in one line, before transformers is asked."""
    config = gpt_neox_config()
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(LossLensError) as info:
        hf_causal_lm(str(tmp_path))
    line = info.value.line()
    assert "auto_map" in line and "remote code" in line and "\n" not in line
    with pytest.raises(LossLensError, match="auto_map"):
        hf_causal_lm(config)


def test_missing_tokenizer_refused(lm_folder, tmp_path):
    """A text without a tokenizer.json in the named folder is refused in one line naming the file."""
    empty = tmp_path / "no_tokenizer"
    empty.mkdir()
    with pytest.raises(LossLensError) as info:
        causal_lm(text=str(lm_folder.parent / "text.txt"), tokenizer=str(empty))
    line = info.value.line()
    assert "no tokenizer.json" in line and str(empty / "tokenizer.json") in line and "\n" not in line
    with pytest.raises(LossLensError, match="needs tokenizer"):
        causal_lm(text=str(lm_folder.parent / "text.txt"))


def test_bad_configs_refused(tmp_path):
    """Unknown architectures and non-causal models are refused in one line each."""
    with pytest.raises(LossLensError, match="unknown model_type 'nope'"):
        hf_causal_lm({"model_type": "nope"})
    with pytest.raises(LossLensError, match=r"no config\.json"):
        hf_causal_lm(str(tmp_path))
    with pytest.raises(LossLensError, match="not a causal LM"):
        hf_causal_lm({"model_type": "vit"})


def test_config_identity_ignores_provenance(lm_folder):
    """The rebuilt architecture drops keys that do not change the computation (version, dtype, path)."""
    cfg = read_config(lm_folder)
    raw = json.loads((lm_folder / "config.json").read_text())
    assert "transformers_version" in raw and "transformers_version" not in cfg
    assert cfg["hidden_size"] == 16 and cfg["model_type"] == "gpt_neox"


def test_tied_embeddings_counted_once(tmp_path):
    """Tied input/output embeddings: one parameter, absent from the file, and the loss still equals transformers'."""
    folder = make_folder(tmp_path / "tied", tie=True)
    model = our_model(folder)
    names = [n for n, _ in model.named_parameters()]
    aliases = tied_parameter_names(model)
    assert aliases == {"lm_head.weight": "gpt_neox.embed_in.weight"}
    assert "lm_head.weight" not in names
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for _, p in model.named_parameters())
    problem = causal_lm(text=str(folder.parent / "text.txt"), tokenizer=str(folder), seq_len=16)
    batch = next(problem.batches())
    params = dict(model.named_parameters())  # only the kept name: functional_call ties the alias to it
    with torch.no_grad():
        torch.testing.assert_close(
            problem.loss(model, {**params, **dict(model.named_buffers())}, batch),
            reference_model(folder)(batch, labels=batch).loss,
        )


def test_vocabulary_mismatch_refused(lm_folder, tmp_path):
    """Token ids beyond the model's vocabulary are refused in one line instead of an index error."""
    np.save(tmp_path / "big.npy", np.arange(100) % 60)
    problem = causal_lm(tokens=str(tmp_path / "big.npy"), seq_len=10)
    model = our_model(lm_folder)
    with pytest.raises(LossLensError, match="outside the model's vocabulary of 48"):
        problem.loss(model, dict(model.named_parameters()), next(problem.batches()))


# ---------------------------------------------------------------------------------------------
# Through the catalog: ingest of Hugging Face folders, then the metrics.


def lm_sweep(root: Path, seeds=(0, 1), steps=(10, 20), **folder_kwargs) -> Path:
    """Folders root/run/seed<S>/step<T> (random weights per seed and step) and a spec naming them by glob."""
    for seed in seeds:
        for step in steps:
            make_folder(root / "run" / f"seed{seed}" / f"step{step}", seed=100 * seed + step, **folder_kwargs)
    text = root / "run" / f"seed{seeds[0]}" / "text.txt"
    spec = root / "lm.toml"
    spec.write_text(
        'name = "tiny-lm"\n\n[model]\nfactory = "hf_causal_lm"\n\n[problem]\nfactory = "causal_lm"\n'
        f'kwargs = {{ text = "{text}", tokenizer = "{root / "run" / f"seed{seeds[0]}" / f"step{steps[0]}"}", '
        "seq_len = 16, batch_size = 4 }\n\n"
        '[checkpoints]\npaths = ["run/seed*/step*"]\n'
    )
    return spec


@pytest.fixture(scope="module")
def lm_catalog(tmp_path_factory) -> tuple[Path, Path]:
    from losslens.ingest import ingest

    root = tmp_path_factory.mktemp("sweep")
    spec = lm_sweep(root)
    db = root / "catalog" / "losslens.db"
    report = ingest(spec, db)
    assert report.count("added") == 4, [o.error for o in report.outcomes]
    return db, root


def test_ingest_reads_seed_step_and_config_from_the_folders(lm_catalog):
    """A sweep of folders is one spec: seed and step from the folder names, one model record per architecture,
    parameters counted once, and the architecture rebuilt from the catalog alone."""
    from losslens.store.catalog import open_catalog

    db, root = lm_catalog
    with open_catalog(db, readonly=True) as cat:
        rows = cat.query(
            "SELECT c.seed, c.step, c.n_params, c.model_id, m.architecture_json FROM checkpoints c JOIN models m ON m.id = c.model_id ORDER BY c.seed, c.step"
        )
    assert [(r["seed"], r["step"]) for r in rows] == [(0, 10), (0, 20), (1, 10), (1, 20)]
    assert len({r["model_id"] for r in rows}) == 1
    arch = json.loads(rows[0]["architecture_json"])
    assert arch["kwargs"]["config"] == read_config(root / "run" / "seed0" / "step10")
    ref = reference_model(root / "run" / "seed0" / "step10")
    assert rows[0]["n_params"] == sum(p.numel() for p in ref.parameters())


def test_metrics_on_ingested_lm_match_transformers(lm_catalog):
    """Oracles: transformers' from_pretrained loss and perplexity on the same sequences; a landscape's centre is
    the loss at θ; the Hessian's top eigenvalue over a --params block equals the dense Hessian's
    (torch.autograd.functional.hessian) of that block."""
    from losslens.jobs import compute
    from losslens.jobs.context import CHECKPOINT_SQL, load_subject
    from losslens.store.catalog import open_catalog

    db, root = lm_catalog
    opts = [
        ("k", "1"),
        ("params", "layers.1.attention.dense.*"),
        ("trace-probes", "0"),
        ("no-esd", None),
        ("steps", "5"),
        ("landscape.batches", "1"),
    ]
    report = compute(["performance", "hessian", "landscape"], opts, catalog_path=db, device="cpu")
    assert report.failed == 0, [m.failures for m in report.metrics]
    with open_catalog(db, readonly=True) as cat:
        record = cat.one(CHECKPOINT_SQL + " WHERE c.seed = 1 AND c.step = 20")
        sha = record["sha256"]
        perf = {
            (r["split"], r["name"]): r["value"]
            for r in cat.query("SELECT split, name, value FROM performance WHERE checkpoint=?", (sha,))
        }
        top = cat.one("SELECT value FROM hessian_eigenvalues WHERE checkpoint=? AND rank=0", (sha,))["value"]
        summary = cat.one("SELECT n_params FROM hessian_summaries WHERE checkpoint=?", (sha,))
        centre = cat.one("SELECT centre_loss FROM landscapes WHERE checkpoint=?", (sha,))["centre_loss"]
    folder = root / "run" / "seed1" / "step20"
    ref = reference_model(folder)
    problem = causal_lm(
        text=str(root / "run" / "seed0" / "text.txt"), tokenizer=str(root / "run" / "seed0" / "step10"), seq_len=16, batch_size=4
    )
    for split in ("train", "test"):
        seqs = problem.data[split]
        with torch.no_grad():
            loss = float(ref(seqs, labels=seqs).loss)
        assert perf[(split, "loss")] == pytest.approx(loss, rel=1e-5)
        assert perf[(split, "perplexity")] == pytest.approx(math.exp(loss), rel=1e-5)
    batch = next(problem.batches("train"))
    with torch.no_grad():
        assert centre == pytest.approx(float(ref(batch, labels=batch).loss), rel=1e-6)

    subject = load_subject(record, torch.device("cpu"))
    names = [k for k in subject.params if "layers.1.attention.dense." in k]
    assert summary["n_params"] == sum(subject.params[k].numel() for k in names) == 16 * 16 + 16
    model = ref.double()
    fixed = {k: v.double() for k, v in model.named_parameters()}
    sizes = [fixed[k].numel() for k in names]

    def block_loss(flat: torch.Tensor) -> torch.Tensor:
        parts = dict(zip(names, (t.reshape(fixed[k].shape) for k, t in zip(names, flat.split(sizes), strict=True)), strict=True))
        out = torch.func.functional_call(model, {**fixed, **parts}, (batch,), {"labels": batch, "use_cache": False})
        return out.loss

    theta = torch.cat([fixed[k].reshape(-1) for k in names]).detach()
    dense = torch.autograd.functional.hessian(block_loss, theta)
    assert top == pytest.approx(float(torch.linalg.eigvalsh(dense)[-1]), rel=1e-4)


def test_sharded_and_tied_folders_ingest(tmp_path):
    """Sharded safetensors with an index and tied embeddings ingest; the loss equals transformers' own and a tied
    tensor is counted once."""
    from losslens.ingest import ingest
    from losslens.jobs import compute
    from losslens.store.catalog import open_catalog

    spec = lm_sweep(tmp_path, seeds=(0,), steps=(5,), tie=True)
    folder = tmp_path / "run" / "seed0" / "step5"
    model = reference_model(folder)
    sharded = tmp_path / "run" / "seed0" / "step6"
    model.save_pretrained(sharded, max_shard_size="20KB")
    assert (sharded / "model.safetensors.index.json").is_file() and len(list(sharded.glob("model-*.safetensors"))) > 1
    db = tmp_path / "catalog" / "losslens.db"
    report = ingest(spec, db)
    assert report.count("added") == 2, [o.error for o in report.outcomes]
    assert compute(["performance"], [], catalog_path=db).failed == 0
    problem = causal_lm(text=str(tmp_path / "run" / "seed0" / "text.txt"), tokenizer=str(folder), seq_len=16)
    seqs = problem.data["train"]
    with torch.no_grad():
        expected = float(model(seqs, labels=seqs).loss)
    with open_catalog(db, readonly=True) as cat:
        rows = cat.query(
            "SELECT c.step, c.n_params, p.value FROM checkpoints c JOIN performance p ON p.checkpoint = c.sha256 "
            "WHERE p.split = 'train' AND p.name = 'loss' ORDER BY c.step"
        )
    assert [r["step"] for r in rows] == [5, 6]
    for r in rows:
        assert r["value"] == pytest.approx(expected, rel=1e-5)
        assert r["n_params"] == sum(p.numel() for p in model.parameters())  # the tied tensor once


def test_ingest_refuses_auto_map_folder(tmp_path):
    """A folder whose config needs remote code fails ingest in one line; the other folders still ingest."""
    from losslens.ingest import ingest

    spec = lm_sweep(tmp_path, seeds=(0, 1), steps=(1,))
    bad = tmp_path / "run" / "seed1" / "step1" / "config.json"
    config = json.loads(bad.read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_x.X"}
    bad.write_text(json.dumps(config))
    report = ingest(spec, tmp_path / "catalog" / "losslens.db")
    assert report.count("added") == 1 and report.count("failed") == 1
    error = next(o.error for o in report.outcomes if o.status == "failed")
    assert "auto_map" in error and "\n" not in error


def _hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA by its definition, HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with H K H, in numpy (the oracle)."""
    n = len(x)
    h = np.eye(n) - 1.0 / n
    k, l_ = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return float((k * l_).sum() / np.sqrt((k * k).sum() * (l_ * l_).sum()))


def test_pair_metrics_on_ingested_lm(lm_catalog):
    """Oracles: CKA by its HSIC definition on transformers' own hidden states (final and per layer); the straight
    path's losses at t = 0, ½, 1 from transformers' loss at θ_a, (θ_a + θ_b)/2, θ_b; the next-token disagreement
    from transformers' logits."""
    from losslens.jobs import compute
    from losslens.store.catalog import open_catalog

    db, root = lm_catalog
    opts = [("inputs", "6"), ("curve", "linear"), ("points", "3"), ("pairs", "all")]
    report = compute(["cka", "connectivity", "disagreement", "predictions"], opts, catalog_path=db, device="cpu")
    assert report.failed == 0, [m.failures for m in report.metrics]
    with open_catalog(db, readonly=True) as cat:
        rec = {(r["seed"], r["step"]): r["sha256"] for r in cat.query("SELECT sha256, seed, step FROM checkpoints")}
        a, b = rec[(0, 10)], rec[(1, 20)]
        pair = "((checkpoint_a=? AND checkpoint_b=?) OR (checkpoint_a=? AND checkpoint_b=?))"
        args = (a, b, b, a)
        cka = cat.one(f"SELECT value, quantity FROM pair_metrics WHERE metric='cka' AND {pair}", args)
        layers = cat.query(f"SELECT checkpoint_a, layer_a, layer_b, value FROM layer_cka WHERE {pair}", args)
        curve = cat.query(
            "SELECT t, loss FROM curve_points WHERE curve='linear' AND checkpoint_a=? AND checkpoint_b=? ORDER BY t",
            (a, b) if cat.one("SELECT 1 FROM curve_points WHERE checkpoint_a=?", (a,)) else (b, a),
        )
        swapped = cat.one("SELECT 1 FROM curve_points WHERE checkpoint_a=? AND checkpoint_b=?", (a, b)) is None
        disagree = cat.one(f"SELECT value FROM pair_metrics WHERE metric='disagreement' AND {pair}", args)["value"]
    folders = {a: root / "run" / "seed0" / "step10", b: root / "run" / "seed1" / "step20"}
    models = {sha: reference_model(f) for sha, f in folders.items()}
    problem = causal_lm(
        text=str(root / "run" / "seed0" / "text.txt"), tokenizer=str(folders[a].parent / "step10"), seq_len=16, batch_size=4
    )
    ids = problem.data["train"][:6]
    with torch.no_grad():
        hidden = {
            sha: [h.reshape(-1, h.shape[-1]).double().numpy() for h in m(ids, output_hidden_states=True).hidden_states]
            for sha, m in models.items()
        }
    assert cka["quantity"] == "final_hidden"
    assert cka["value"] == pytest.approx(_hsic_cka(hidden[a][-1], hidden[b][-1]), rel=1e-6)
    assert len(layers) == 9  # hidden.0 … hidden.2 of each model
    for row in layers:
        first, second = (a, b) if row["checkpoint_a"] == a else (b, a)
        i, j = int(row["layer_a"].split(".")[1]), int(row["layer_b"].split(".")[1])
        assert row["value"] == pytest.approx(_hsic_cka(hidden[first][i], hidden[second][j]), rel=1e-6)

    seqs = problem.data["train"]
    theta_a, theta_b = (dict(models[s].state_dict()) for s in ((b, a) if swapped else (a, b)))
    mid = reference_model(folders[a])
    mid.load_state_dict({k: (theta_a[k] + theta_b[k]) / 2 for k in theta_a})
    start, end = (models[b], models[a]) if swapped else (models[a], models[b])
    with torch.no_grad():
        expected = [float(m(seqs, labels=seqs).loss) for m in (start, mid, end)]
    assert [r["t"] for r in curve] == [0.0, 0.5, 1.0]
    assert [r["loss"] for r in curve] == pytest.approx(expected, rel=1e-5)
    test = problem.data["test"]
    with torch.no_grad():
        pa, pb = (models[s](test).logits[:, :-1].argmax(-1) for s in (a, b))
    assert disagree == pytest.approx(float((pa != pb).double().mean()), abs=1e-12)


def test_demo_training_writes_an_ingestable_sweep(tmp_path):
    """The LM study's training (what `losslens demo --study lm` runs, at toy size): folders saved with
    save_pretrained along training, a spec that ingests them into one setting per step with the seeds as
    modes, and a rerun that trains nothing. Oracle for the saved weights: transformers' own loss equals the
    sidecar's recorded training loss."""
    from losslens.demo import run_demo
    from losslens.ingest import ingest
    from losslens.store.catalog import open_catalog
    from losslens.train.lm import LMConfig, train_lm

    config = LMConfig(sentences=200, hidden_size=16, heads=2, seq_len=16, save_steps=(2, 5))
    result = train_lm(tmp_path / "runs", seeds=(0, 1), config=config, name="lm-test")
    assert result.trained == 4 and {(r.seed, r.steps) for r in result.runs} == {(0, 2), (0, 5), (1, 2), (1, 5)}
    folder = tmp_path / "runs" / "seed1" / "step5"
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    problem = causal_lm(text=str(tmp_path / "runs" / "text.txt"), tokenizer=str(folder), seq_len=16, batch_size=8)
    seqs = problem.data["train"]
    with torch.no_grad():
        loss = float(reference_model(folder)(seqs, labels=seqs).loss)
    assert json.loads((folder.parent / "step5.json").read_text())["metrics"]["train_loss"] == pytest.approx(loss, rel=1e-5)
    report = ingest(result.spec, tmp_path / "catalog" / "losslens.db")
    assert report.count("added") == 4, [o.error for o in report.outcomes]
    with open_catalog(tmp_path / "catalog" / "losslens.db", readonly=True) as cat:
        rows = cat.query(
            "SELECT s.label, c.seed, c.step FROM checkpoints c JOIN models m ON m.id = c.model_id JOIN settings s ON s.id = m.setting_id ORDER BY s.label, c.seed"
        )
    assert [(r["label"], r["seed"], r["step"]) for r in rows] == [
        ("step=2", 0, 2),
        ("step=2", 1, 2),
        ("step=5", 0, 5),
        ("step=5", 1, 5),
    ]
    assert train_lm(tmp_path / "runs", seeds=(0, 1), config=config, name="lm-test").trained == 0
    with pytest.raises(LossLensError, match="unknown study 'nope'"):
        run_demo(tmp_path / "demo", study="nope")


def test_bfloat16_model_matches_transformers_in_bfloat16(lm_folder):
    """Oracle: transformers' own model loaded in bfloat16 and its labels= loss; the factory's dtype kwarg builds
    the model in that dtype (what a GPU run would use to halve memory), and the loss is taken in float32."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model = hf_causal_lm(str(lm_folder), dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16
    state = {k: v.to(torch.bfloat16) for k, v in align_state_dict(model, load_file(lm_folder / "model.safetensors")).items()}
    model.load_state_dict(state)
    ref = AutoModelForCausalLM.from_pretrained(lm_folder, dtype=torch.bfloat16, attn_implementation="eager").eval()
    problem = causal_lm(text=str(lm_folder.parent / "text.txt"), tokenizer=str(lm_folder), seq_len=16, batch_size=4)
    batch = next(problem.batches())
    with torch.no_grad():
        ours = problem.loss(model, {**dict(model.named_parameters()), **dict(model.named_buffers())}, batch)
        logits = ref(batch).logits.float()
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(LossLensError, match="dtype 'float8'"):
        hf_causal_lm(str(lm_folder), dtype="float8")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; the project's test machines have none")
def test_cuda_bfloat16_hessian_close_to_float32(lm_folder):
    """On a GPU: the top Hessian eigenvalue of the bfloat16 model is within bfloat16 accuracy of the float32 one
    (oracle: the float32 Lanczos value), and the memory budget reads the device's free memory."""
    from safetensors.torch import load_file

    from losslens.hessian import hvp_operator, top_eigenpairs
    from losslens.jobs.context import Subject
    from losslens.memory import available_bytes

    device = torch.device("cuda")
    problem = causal_lm(text=str(lm_folder.parent / "text.txt"), tokenizer=str(lm_folder), seq_len=16).to(device)
    values = {}
    for dtype in ("float32", "bfloat16"):
        model = hf_causal_lm(str(lm_folder), dtype=dtype)
        model.load_state_dict(
            {k: v.to(model.dtype) for k, v in align_state_dict(model, load_file(lm_folder / "model.safetensors")).items()}
        )
        model.to(device).eval()
        params = {k: v.detach() for k, v in model.named_parameters()}
        subject = Subject("s", dtype, model, params, {k: v.detach() for k, v in model.named_buffers()}, problem, {})
        values[dtype] = float(top_eigenpairs(hvp_operator(subject), k=1, tol=1e-4)[0][0])
    assert values["bfloat16"] == pytest.approx(values["float32"], rel=5e-2)
    assert available_bytes(device) > 0


def test_train_lm_refuses_an_unknown_config_name(tmp_path):
    """Only "quick" names a configuration; any other string was used as one (AttributeError on
    'str'.save_steps) — now one line naming the option, and nothing written."""
    from losslens.train.lm import QUICK, LMConfig, lm_config, train_lm

    with pytest.raises(LossLensError, match="unknown LM configuration 'fast'"):
        train_lm(tmp_path / "runs", config="fast")
    assert not (tmp_path / "runs").exists()
    assert lm_config("quick") is QUICK and lm_config(None) == LMConfig()


# ---------------------------------------------------------------------------------------------
# --params globs resolved at planning (losslens/jobs/blocks.py) on Hugging Face models


def _metric_runs(db: Path) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, status, finished_at FROM metric_runs ORDER BY id").fetchall()


def _planned_blocks(db: Path, globs: str) -> list:
    from losslens.jobs import compute

    blocks: list = []
    compute(
        ["hessian"],
        [("params", globs)],
        catalog_path=db,
        device="cpu",
        dry_run=True,
        on_event=lambda event, **data: blocks.extend(data["blocks"]) if event == "dry_run" else None,
    )
    return blocks


def test_dry_run_counts_params_globs_on_a_gpt_neox(lm_catalog):
    """The four folders share one architecture: one block, resolved from the config in the catalog (the
    skeleton is built on the meta device, no weights read). Oracle: transformers' own from_pretrained model's
    named_parameters(), selected by hand-written prefixes and suffixes of the names; a glob matching nothing is
    refused before any run is written, naming the model and suggesting '*.attention.*' for 'attention.*'."""
    from losslens.jobs import compute

    db, root = lm_catalog
    before = _metric_runs(db)
    (block,) = _planned_blocks(db, "layers.1.*,*.bias")
    ref = dict(reference_model(root / "run" / "seed0" / "step10").named_parameters())
    layer = [n for n in ref if n.startswith("gpt_neox.layers.1.")]
    biases = [n for n in ref if n.endswith(".bias")]
    union = [n for n in ref if n in layer or n in biases]
    weights = {n: ref[n].numel() for n in ref}
    assert block.model == "'hf_causal_lm default' (4 checkpoints)" and block.checkpoints == 4
    assert [(g.glob, g.tensors, g.weights) for g in block.globs] == [
        ("layers.1.*", len(layer), sum(weights[n] for n in layer)),
        ("*.bias", len(biases), sum(weights[n] for n in biases)),
    ]
    assert (block.tensors, block.weights) == (len(union), sum(weights[n] for n in union))
    assert (block.total_tensors, block.total_weights) == (len(ref), sum(weights.values()))
    assert (
        len(layer) == 12 and sum(weights[n] for n in layer) == 4 * 16 + (16 * 48 + 48) + (16 * 16 + 16) + 2 * (16 * 64) + 64 + 16
    )
    with pytest.raises(LossLensError) as err:
        _planned_blocks(db, "attention.*")
    line = err.value.line()
    assert line.startswith("hessian: --params 'attention.*' matches no parameter of model 'hf_causal_lm default' (4 checkpoints)")
    assert "closest: '*.attention.*'" in line and "after 'gpt_neox.'" in line
    with pytest.raises(LossLensError, match=re.escape("--params 'layers.2.*' matches no parameter")) as err:
        compute(["performance", "hessian"], [("params", "layers.2.*")], catalog_path=db, device="cpu")
    assert "'layers.1.*'" in err.value.line() or "'layers.0.*'" in err.value.line()
    assert _metric_runs(db) == before


def test_params_globs_on_a_tied_gpt2_follow_named_parameters(tmp_path):
    """GPT-2 ties lm_head.weight to transformer.wte.weight: named_parameters() lists the tensor once, under its
    first name, so 'lm_head.weight' is refused at planning and 'wte.*' counts the vocabulary × width tensor once.
    Oracle: transformers' own from_pretrained model."""
    from losslens.ingest import ingest

    text = generated_text(300, seed=1)
    folder = tmp_path / "run" / "step1"
    torch.manual_seed(0)
    config = {"model_type": "gpt2", "vocab_size": 48, "n_embd": 8, "n_layer": 2, "n_head": 2, "n_positions": 32}
    save_folder(hf_causal_lm(config), folder, word_tokenizer(text, vocab_size=48))
    (tmp_path / "text.txt").write_text(text)
    spec = tmp_path / "gpt2.toml"
    spec.write_text(
        'name = "tiny-gpt2"\n\n[model]\nfactory = "hf_causal_lm"\n\n[problem]\nfactory = "causal_lm"\n'
        f'kwargs = {{ text = "{tmp_path / "text.txt"}", tokenizer = "{folder}", seq_len = 16, batch_size = 4 }}\n\n'
        '[checkpoints]\npaths = ["run/step*"]\n'
    )
    db = tmp_path / "catalog" / "losslens.db"
    assert ingest(spec, db).count("added") == 1
    ref = reference_model(folder)
    assert ref.lm_head.weight is ref.transformer.wte.weight
    names = dict(ref.named_parameters())
    assert "lm_head.weight" not in names
    with pytest.raises(
        LossLensError,
        match=re.escape("--params 'lm_head.weight' matches no parameter of model 'hf_causal_lm default' (1 checkpoint)"),
    ):
        _planned_blocks(db, "lm_head.weight")
    (block,) = _planned_blocks(db, "wte.*,h.0.*")
    first = [n for n in names if n.startswith("transformer.h.0.")]
    assert [(g.glob, g.tensors, g.weights) for g in block.globs] == [
        ("wte.*", 1, 48 * 8),
        ("h.0.*", len(first), sum(names[n].numel() for n in first)),
    ]
    assert block.total_weights == sum(p.numel() for p in ref.parameters())  # the tied tensor once
    assert _metric_runs(db) == []
