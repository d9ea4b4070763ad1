"""CKA identities and invariances, debiased HSIC against its definition, classical MDS, and the metrics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist, squareform

from losslens.jobs import compute, load_subject
from losslens.jobs.context import CHECKPOINT_SQL
from losslens.similarity import Representation, classical_mds, linear_cka
from losslens.similarity.features import default_layers, input_set, model_outputs
from losslens.store.catalog import open_catalog

RNG = np.random.default_rng(0)


def direct_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook formula on centred features, in numpy."""
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def u_statistic_hsic(k: np.ndarray, lk: np.ndarray) -> float:
    """Unbiased HSIC as the U-statistic of Song et al. (2012): the mean over ordered distinct quadruples
    (i, j, q, r) of K_ij L_ij + K_ij L_qr − 2 K_ij L_iq (``lk`` is L)."""
    n = len(k)
    total = sum(
        k[i, j] * lk[i, j] + k[i, j] * lk[q, r] - 2 * k[i, j] * lk[i, q] for i, j, q, r in itertools.permutations(range(n), 4)
    )
    return total / math.perm(n, 4)


def test_cka_of_a_representation_with_itself_is_one():
    """Identity: CKA(X, X) = 1, for features (p ≤ n) and Gram (p > n) forms, biased and debiased."""
    for shape in ((50, 7), (9, 40)):
        x = RNG.normal(size=shape)
        for debiased in (False, True):
            assert linear_cka(x, x, debiased) == pytest.approx(1.0, abs=1e-12)


def test_cka_invariance_to_orthogonal_transforms_and_isotropic_scaling():
    """Invariance: CKA(XQ·s, Y) = CKA(X, Y) for orthogonal Q and s > 0 (biased and debiased), and it is
    symmetric."""
    x, y = RNG.normal(size=(40, 6)), RNG.normal(size=(40, 6)) + 0.5 * RNG.normal(size=(40, 1))
    q, _ = np.linalg.qr(RNG.normal(size=(6, 6)))
    for debiased in (False, True):
        base = linear_cka(x, y, debiased)
        assert linear_cka(3.7 * x @ q, y, debiased) == pytest.approx(base, rel=1e-10)
        assert linear_cka(y, x, debiased) == pytest.approx(base, rel=1e-12)


def test_hand_computable_three_by_two_case():
    """Closed form: X = [[1,0],[0,1],[−1,−1]], Y = [[1,1],[0,0],[−1,−1]] (both centred): ‖YᵀX‖² = 10,
    ‖XᵀX‖ = √10, ‖YᵀY‖ = 4, so CKA = 10 / (4√10) = √10 / 4."""
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    y = np.array([[1.0, 1.0], [0.0, 0.0], [-1.0, -1.0]])
    assert linear_cka(x, y) == pytest.approx(math.sqrt(10) / 4, rel=1e-14)


def test_feature_and_gram_forms_match_the_direct_formula():
    """Direct formula: the features form (p ≤ n), the Gram form (p > n) and a mixed pair all equal
    ‖YᵀX‖²/(‖XᵀX‖‖YᵀY‖) computed on the centred features."""
    for px, py in ((3, 5), (30, 45), (4, 60)):
        x, y = RNG.normal(size=(12, px)), RNG.normal(size=(12, py))
        x[:, 0] += y[:, 0]
        assert linear_cka(x, y) == pytest.approx(direct_linear_cka(x, y), rel=1e-10)


def test_debiased_cka_against_direct_u_statistic():
    """Oracle: the debiased HSIC of Song et al. computed by brute force over all ordered quadruples of 7 examples
    (on centred linear Grams) gives the same debiased CKA, in both the features and the Gram forms."""
    for p in (3, 11):
        x, y = RNG.normal(size=(7, p)), RNG.normal(size=(7, p))
        y[:, 0] += 2 * x[:, 0]
        xc, yc = x - x.mean(0), y - y.mean(0)
        k, lk = xc @ xc.T, yc @ yc.T
        expected = u_statistic_hsic(k, lk) / math.sqrt(u_statistic_hsic(k, k) * u_statistic_hsic(lk, lk))
        assert linear_cka(x, y, debiased=True) == pytest.approx(expected, rel=1e-10)
        rx = Representation(x)
        assert rx.hsic(Representation(y), debiased=True) == pytest.approx(u_statistic_hsic(k, lk), rel=1e-10)


def test_constant_features_give_nan():
    """Degenerate input: a representation with no variance has no CKA (NaN, never a made-up number)."""
    assert math.isnan(linear_cka(np.ones((5, 2)), RNG.normal(size=(5, 2))))


def test_classical_mds_recovers_a_planar_configuration_up_to_rotation():
    """Oracle: distances of a known 2-D configuration come back exactly, and an orthogonal Procrustes fit
    maps the centred configuration onto the MDS coordinates with zero residual."""
    points = RNG.normal(size=(6, 2)) * [3.0, 1.0]
    coords, eig = classical_mds(squareform(pdist(points)))
    assert np.allclose(squareform(pdist(coords)), squareform(pdist(points)), atol=1e-10)
    centred = points - points.mean(0)
    rotation, _ = orthogonal_procrustes(centred, coords)
    assert np.allclose(centred @ rotation, coords, atol=1e-10)
    assert eig[0] >= eig[1] > 0


def test_classical_mds_of_two_points_is_a_segment():
    """Closed form: two points at distance d sit at ±d/2 on the first axis; the second axis is 0 (not NaN)."""
    coords, eig = classical_mds(np.array([[0.0, 0.4], [0.4, 0.0]]))
    assert np.allclose(sorted(coords[:, 0]), [-0.2, 0.2]) and np.allclose(coords[:, 1], 0) and eig[1] == 0


def test_similarity_fills_cka_layers_and_mds_for_the_pinn(pinn_catalog):
    """Recomputation oracle: the stored model-level CKA equals linear CKA of the two models' u on the evaluation
    grid computed here; layer CKA covers every linear layer pair, and the last layer's CKA equals the model-level
    value (its output is u); MDS places two seeds 1 − CKA apart on the x axis."""
    report = compute(["similarity"], [], catalog_path=pinn_catalog)
    assert report.failed == 0 and [m.done for m in report.metrics] == [2, 2]
    with open_catalog(pinn_catalog, readonly=True) as cat:
        pairs = cat.query("SELECT * FROM pair_metrics WHERE metric = 'cka'")
        layers = cat.query("SELECT * FROM layer_cka")
        coords = cat.query("SELECT * FROM mds_coords")
        records = {r["sha256"]: r for r in cat.query(CHECKPOINT_SQL)}
        inputs = cat.run_artifact(pairs[0]["run_id"], "inputs")
    assert {p["quantity"] for p in pairs} == {"u"} and len(pairs) == 2 and len(coords) == 4
    pair = pairs[0]
    a, b = (load_subject(records[pair[k]], torch.device("cpu")) for k in ("checkpoint_a", "checkpoint_b"))
    x, _ = input_set(a, 768, 16.0, 0)
    assert inputs.shape == (32 * 16, 2)
    assert pair["value"] == pytest.approx(direct_linear_cka(model_outputs(a, x).numpy(), model_outputs(b, x).numpy()), rel=1e-6)
    run_layers = [r for r in layers if r["run_id"] == pair["run_id"]]
    assert len(run_layers) == len(default_layers(a)) ** 2 == 9
    last = next(r for r in run_layers if r["layer_a"] == r["layer_b"] == "4")
    assert last["value"] == pytest.approx(pair["value"], rel=1e-6)  # the last linear layer's output is u
    setting = [c for c in coords if c["checkpoint"] in (pair["checkpoint_a"], pair["checkpoint_b"])]
    assert abs(setting[0]["x"] - setting[1]["x"]) == pytest.approx(1 - pair["value"], rel=1e-6)
    assert all(c["y"] == 0 for c in setting)


def test_cka_on_mixup_softmax_for_batch_norm_models(digits_catalog):
    """Recomputation oracle: for the digits ResNet, the stored CKA equals the direct formula on softmax outputs over
    the recorded mixup inputs rebuilt from their (i, j, λ) recipe; the layer matrix covers the named layers.
    The untrained ResNet without skips gives exactly constant outputs, so its CKA is stored as NULL."""
    opts = [("inputs", "64"), ("layers", "conv1,layers.8.conv2,fc")]
    report = compute(["cka"], opts, catalog_path=digits_catalog)
    assert report.failed == 0
    with open_catalog(digits_catalog, readonly=True) as cat:
        pair = cat.one(
            "SELECT p.* FROM pair_metrics p JOIN metric_runs r ON r.id = p.run_id JOIN settings s "
            "ON s.id = r.setting_id WHERE p.metric = 'cka' AND s.label LIKE '%True%'"
        )
        constant = cat.one(
            "SELECT p.* FROM pair_metrics p JOIN metric_runs r ON r.id = p.run_id JOIN settings s "
            "ON s.id = r.setting_id WHERE p.metric = 'cka' AND s.label LIKE '%False%'"
        )
        recipe = cat.run_artifact(pair["run_id"], "inputs")
        layers = cat.query("SELECT * FROM layer_cka WHERE run_id = ?", (pair["run_id"],))
        records = {r["sha256"]: r for r in cat.query(CHECKPOINT_SQL)}
    a, b = (load_subject(records[pair[k]], torch.device("cpu")) for k in ("checkpoint_a", "checkpoint_b"))
    xtr, _ = a.problem.split("train")
    i, j, lam = recipe[:, 0].astype(int), recipe[:, 1].astype(int), recipe[:, 2]
    lam_t = torch.as_tensor(lam, dtype=torch.float32)[:, None, None, None]
    x = lam_t * xtr[i] + (1 - lam_t) * xtr[j]
    pa = torch.softmax(a.model(x), -1).detach().numpy()
    pb = torch.softmax(b.model(x), -1).detach().numpy()
    assert pair["quantity"] == "softmax" and recipe.shape == (64, 3)
    assert pair["value"] == pytest.approx(direct_linear_cka(pa, pb), rel=1e-5)
    assert constant["value"] is None
    assert len(layers) == 9 and {r["layer_a"] for r in layers} == {"conv1", "layers.8.conv2", "fc"}
