"""The scikit-learn workload: five estimators fitted and used, which cuml.accel runs on the GPU without a code
change."""

from __future__ import annotations

from typing import Any

from .measure import run_repeated

__all__ = ["sklearn_estimators", "sklearn_suite"]


def sklearn_estimators(*, seed: int = 0) -> dict[str, Any]:
    """The estimators :func:`sklearn_suite` fits, by name (cuml.accel swaps in cuML's on a GPU path)."""
    from sklearn.cluster import KMeans  # noqa: PLC0415
    from sklearn.decomposition import PCA  # noqa: PLC0415
    from sklearn.ensemble import RandomForestClassifier  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.neighbors import NearestNeighbors  # noqa: PLC0415

    return {"kmeans": KMeans(n_clusters=8, n_init=3, random_state=seed),
            "random_forest": RandomForestClassifier(n_estimators=100, max_depth=12, n_jobs=-1, random_state=seed),
            "logistic_regression": LogisticRegression(max_iter=500),
            "pca": PCA(n_components=8, random_state=seed),
            "nearest_neighbors": NearestNeighbors(n_neighbors=10)}


def sklearn_suite(n_samples: int, *, n_features: int = 32, seed: int = 0, repeats: int = 3) -> dict[str, Any]:
    """Fit and predict with five estimators, cold then warm; stage seconds, call counts and quality checks."""
    from sklearn.datasets import make_classification  # noqa: PLC0415
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    X, y = make_classification(n_samples=n_samples, n_features=n_features, n_informative=n_features // 2,
                               n_classes=4, random_state=seed)
    X = X.astype("float32")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=seed)

    def fresh():
        return {"est": sklearn_estimators(seed=seed)}

    def stage(name, fn):
        return name, fn

    stages = [
        stage("kmeans_fit", lambda st: st.__setitem__("km", st["est"]["kmeans"].fit(X))),
        stage("forest_fit", lambda st: st["est"]["random_forest"].fit(X_train, y_train)),
        stage("forest_predict", lambda st: st.__setitem__("forest_pred", st["est"]["random_forest"].predict(X_test))),
        stage("logistic_fit", lambda st: st["est"]["logistic_regression"].fit(X_train, y_train)),
        stage("logistic_predict", lambda st: st.__setitem__("logit_pred", st["est"]["logistic_regression"].predict(X_test))),
        stage("pca_fit_transform", lambda st: st.__setitem__("pca_out", st["est"]["pca"].fit_transform(X))),
        stage("nearest_neighbors", lambda st: st.__setitem__("knn", st["est"]["nearest_neighbors"].fit(X_train).kneighbors(X_test))),
    ]
    done = run_repeated(stages, repeats=repeats, fresh_state=fresh)
    st = done.pop("state")
    return done | {"checks": {
        "kmeans_inertia_per_sample": float(st["km"].inertia_) / n_samples,
        "forest_accuracy": float((st["forest_pred"] == y_test).mean()),
        "logistic_accuracy": float((st["logit_pred"] == y_test).mean()),
        "pca_explained_variance": float(st["est"]["pca"].explained_variance_ratio_.sum()),
        "mean_knn_distance": float(st["knn"][0].mean()),
    }}
