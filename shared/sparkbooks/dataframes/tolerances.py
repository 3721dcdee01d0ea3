"""How far the GPU's checks may differ from the CPU's, and why the libraries legitimately differ."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TOLERANCES", "Tolerance"]


@dataclass(frozen=True)
class Tolerance:
    """How far a GPU check may differ from the CPU's, and why the libraries legitimately differ."""

    kind: str  # "abs" or "rel"
    limit: float
    why: str

    def allows(self, cpu: float, gpu: float) -> bool:
        gap = abs(cpu - gpu)
        return gap <= self.limit * (max(abs(cpu), 1e-12) if self.kind == "rel" else 1.0)


#: Per-check tolerances; a check not listed must match exactly.
TOLERANCES: dict[str, Tolerance] = {
    "revenue_total": Tolerance("rel", 1e-9, "float64 sums in a different order"),
    "margin_mean": Tolerance("rel", 1e-9, "float64 sums in a different order"),
    "kmeans_inertia_per_sample": Tolerance("rel", 0.01, "k-means++ seeding differs between scikit-learn and cuML"),
    "forest_accuracy": Tolerance("abs", 0.02, "cuML's forest picks splits from 128 quantile bins, not every threshold"),
    "logistic_accuracy": Tolerance("abs", 0.01, "cuML's QN solver and lbfgs stop at slightly different optima"),
    "pca_explained_variance": Tolerance("rel", 1e-3, "float32 eigen-solvers"),
    "mean_knn_distance": Tolerance("rel", 1e-4, "exact neighbours both ways; float32 distances"),
}
