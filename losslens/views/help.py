"""One short help text per view (mc, CKA, phases, persistence, merge trees, ...), one click away from each chart
in the Datasette pages and the viewer; keyed by the names of :mod:`losslens.views.registry`."""

from __future__ import annotations

HELP: dict[str, str] = {
    "taxonomy": (
        "Each point or cell is a setting (one configuration, several seeds), placed in Yang et al.'s (2021) taxonomy. "
        "Mode connectivity mc: the training error (or PINN loss) midway along a curve fitted between two seeds, minus the mean of "
        "its ends, taken where it deviates most; mc < 0 is a barrier (poorly connected), mc ≥ 0 well connected (the only fixed "
        "threshold). Sharpness: the log mean top Hessian eigenvalue; sharp and flat are relative to the settings compared (above "
        "or below their median by default). Phases: I sharp & poorly connected, II sharp & well connected, III flat & poorly "
        "connected, IV flat & well connected, split by CKA into IV-A (dissimilar seeds) and IV-B (similar seeds, the best test "
        "accuracy in Yang et al.)."
    ),
    "modes": (
        "The seeds (modes) of one setting. Positions: classical MDS of 1 − CKA, so close modes compute similar functions "
        "(CKA, Kornblith et al. 2019: similarity of two networks' outputs on the same inputs, 1 = identical up to rotation and "
        "scale). Links: mode connectivity of the fitted curve between two modes, solid when well connected (mc ≥ 0), dashed "
        "for a barrier (mc < 0). Each glyph: radial bars of the mode's top Hessian eigenvalues (its sharpness) inside a ring of "
        "its performance."
    ),
    "local": (
        "One mode. Landscape: the loss on a plane through the mode spanned by two directions (filter-normalised random "
        "directions by default, Li et al. 2018), with isolines. Merge tree: how the sublevel sets of the loss join as the "
        "level rises; each leaf is a minimum, each join a saddle. Persistence: a minimum born at loss b dies at the saddle d "
        "where it merges into a deeper basin (elder rule); d − b is its persistence, and minima with persistence at or below "
        "the simplification threshold τ are pruned as noise. Hessian: the largest eigenvalues (sharpness) and the spectral density."
    ),
    "landscape": (
        "The loss on a plane through the mode spanned by two directions (filter-normalised random directions by default, "
        "Li et al. 2018); isolines are evenly spaced in log loss; triangles mark the merge tree's minima."
    ),
    "merge-tree": (
        "The join tree of the landscape's sublevel sets: leaves are minima, inner nodes saddles where two basins merge. "
        "Branches with persistence at or below the simplification threshold τ are pruned as noise."
    ),
    "persistence": (
        "Each point is a minimum: born at its loss b, it dies at the saddle d where it merges into a deeper basin (elder rule). "
        "d − b is its persistence: far from the diagonal means a deep, robust basin. Points in the band above the diagonal "
        "(persistence ≤ τ) are pruned from the merge tree; the global minimum never dies."
    ),
    "barcode": (
        "One bar per minimum, from the loss where it is born to the saddle where it dies (elder rule); long bars are deep, "
        "robust basins. Bars no longer than the simplification threshold τ are pruned from the merge tree."
    ),
    "hessian": (
        "The largest eigenvalues of the loss Hessian (Lanczos on Hessian-vector products) measure sharpness: large means "
        "the loss rises fast along some direction. The spectral density (stochastic Lanczos quadrature) shows the whole spectrum."
    ),
    "nd": (
        "A 3-D or 4-D landscape of the mode (loss on θ + Σ aᵢ dᵢ over a grid). Slice: the loss on a plane of two of its "
        "directions (choose the plane below the chart), the other directions fixed at the chosen grid index; the centre index "
        "is θ, marked with a cross. One colour scale for the whole grid, so slices compare by colour. Merge tree, persistence "
        "diagram and barcode are computed on the full n-D grid (not the slice): minima, saddles and their persistence (elder rule)."
    ),
    "slice": (
        "A 2-D slice of a 3-D or 4-D landscape: the loss on the plane of two of its directions, the other directions fixed "
        "at the grid index chosen with the sliders (the centre index is θ, marked with a cross when the slice passes through it). "
        "The colour scale spans the whole grid's loss range, so two slices compare by colour."
    ),
    "nd-merge-tree": (
        "The merge (join) tree of the full 3-D or 4-D grid's sublevel sets, neighbours along every axis: leaves are minima, "
        "inner nodes saddles where two basins merge. Branches with persistence at or below the simplification threshold τ are pruned."
    ),
    "nd-persistence": (
        "Persistence pairs of the full 3-D or 4-D grid (cubical complex, gudhi): each minimum is born at its loss b and dies at "
        "the saddle d where it merges into a deeper basin (elder rule); higher dimensions (H1, H2, …) are tunnels and voids. "
        "Points in the band above the diagonal (persistence ≤ τ) are pruned from the merge tree."
    ),
    "nd-barcode": (
        "One bar per persistence pair of the full 3-D or 4-D grid, from birth to death in loss; long bars are robust features. "
        "Bars no longer than the simplification threshold τ are faded: their minima are pruned from the merge tree."
    ),
    "landscapes": (
        "Both modes' landscapes side by side (each on its own directions, Li et al. 2018). With the box ticked they share one "
        "log colour scale, so a colour means the same loss in both; untick it to see each landscape's own range. Click one to "
        "open its mode."
    ),
    "mode-landscapes": (
        "The landscape of each mode of the setting, side by side: how flat or sharp the loss is around each seed. With the box "
        "ticked all share one log colour scale (the union of their loss ranges), so colours compare across seeds; untick it "
        "for each landscape's own range. Click a landscape to open its mode, where 3-D and 4-D landscapes are sliced."
    ),
    "curve": (
        "Training loss and error along paths between the two modes (t = 0 is mode a, t = 1 mode b): the fitted Bezier or "
        "polychain curve, and the straight line. mc compares the path's worst point with its ends: mc < 0 is a barrier."
    ),
    "layer-cka": (
        "Linear CKA between every layer of mode a and every layer of mode b on the same inputs: 1 means the two layers' "
        "representations match up to rotation and scale (Kornblith et al. 2019)."
    ),
    "predictions": (
        "What the two modes predict. PINN: both u(x, t) fields, their errors against the exact solution, and their difference. "
        "Classifiers: both confusion matrices and the fraction of test examples they label differently."
    ),
}
