"""Topic modelling on sentence embeddings: UMAP → HDBSCAN → class-based TF-IDF keywords.

The estimators are umap-learn's ``UMAP`` and the ``hdbscan`` package's ``HDBSCAN``, imported
only when used, so that ``cuml.accel`` (switched on by :func:`sparkbooks.begin` on a working
GPU, or by ``python -m cuml.accel``) replaces both without a code change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import devices
from ..exceptions import InputError
from ..timing import Stopwatch
from .terms import keywords
from .text import vectorizer

__all__ = ["TopicModel"]


#: below this many rows the k-NN graph is exact, as umap-learn decides for itself (``UMAP._small_data``): a matrix
#: product there is cheaper than compiling NN-descent with numba (≈ 20 s per process on 2 cores)
EXACT_BELOW = 4096


def _neighbours(embeddings: np.ndarray, *, n_neighbors: int, pca_components: int | None,
                random_state: int | None) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], object, str]:
    """The (optionally PCA-reduced) input, its k-NN graph (indices and distances, k nearest, self first), the
    fitted PCA (None without one) and which search made the graph.

    MiniLM vectors are unit length, so Euclidean neighbours are cosine neighbours. PCA makes each
    distance cheaper but, measured on the health tweets, costs agreement with the outlets (NMI
    0.163 at 50 components vs 0.171 on all 384 at 63k tweets), so it is off by default.
    """
    from sklearn.decomposition import PCA  # noqa: PLC0415

    data, pca = embeddings, None
    if pca_components and pca_components < embeddings.shape[1] and len(embeddings) > pca_components:
        pca = PCA(pca_components, random_state=random_state or 0).fit(embeddings)
        data = pca.transform(embeddings).astype(np.float32)
    if len(data) < EXACT_BELOW:
        return data, _ExactIndex(data).query(data, n_neighbors), pca, "exact (CPU)"
    import pynndescent  # noqa: PLC0415

    index = pynndescent.NNDescent(data, n_neighbors=n_neighbors, random_state=random_state, low_memory=True,
                                  n_jobs=None if random_state is not None else -1)
    return data, index.neighbor_graph, pca, "pynndescent (CPU)"


class _ExactIndex:
    """Exact Euclidean k-NN over the fitted rows, in the shape umap-learn's ``transform`` asks of its search index.

    NN-descent's own ``query`` compiles its search with numba on first use (tens of seconds per process on a
    CPU); a batched matrix product is exact and needs no compilation, at O(new × fitted) — what fitting on a
    sample of ~10k keeps small.
    """

    _angular_trees = False

    def __init__(self, data: np.ndarray) -> None:
        self._raw_data = np.ascontiguousarray(data, dtype=np.float32)
        self._norms = np.einsum("ij,ij->i", self._raw_data, self._raw_data)

    def query(self, X: np.ndarray, k: int = 15, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        X = np.asarray(X, dtype=np.float32)  # noqa: N806
        indices = np.empty((len(X), k), dtype=np.int32)
        dists = np.empty((len(X), k), dtype=np.float32)
        # ≤ 64 MB of distances, and of the k candidates' vectors, at a time
        batch = max(1, min(2**24 // len(self._raw_data), 2**24 // (k * self._raw_data.shape[1])))
        for start in range(0, len(X), batch):
            rows = X[start:start + batch]
            d2 = np.einsum("ij,ij->i", rows, rows)[:, None] + self._norms[None, :] - 2 * rows @ self._raw_data.T
            near = np.argpartition(d2, k - 1, axis=1)[:, :k]
            # the k distances again from the differences: the expansion above cancels to ≈ 1e-3 where a row meets
            # itself or a duplicate, and UMAP takes the first non-zero distance as each point's local scale
            exact = np.linalg.norm(self._raw_data[near] - rows[:, None, :], axis=2)
            order = np.argsort(exact, axis=1, kind="stable")
            indices[start:start + len(rows)] = np.take_along_axis(near, order, axis=1)
            dists[start:start + len(rows)] = np.take_along_axis(exact, order, axis=1)
        return indices, dists


class TopicModel:
    """Topics from sentence embeddings: k-NN graph (exact below 4,096 rows, NN-descent above) → UMAP → HDBSCAN → keywords.

    Scikit-learn style: hyper-parameters in the constructor, learned state in attributes ending
    in ``_`` after :meth:`fit`. ``neighbors="auto"`` computes the k-NN graph itself on a CPU and
    leaves it to UMAP on a GPU path (cuML's UMAP builds it on the device); ``random_state=None``
    lets UMAP and NN-descent use every core (results vary run to run), an integer makes the run
    repeatable at some cost in speed.

    Attributes after ``fit``: ``labels_`` (topic per document, −1 = outlier), ``embedding_``
    (the ``n_components``-D UMAP output), ``topic_words_`` (topic → top terms, by :func:`keywords`),
    ``counts_`` (documents × terms), ``vocabulary_``, ``seconds_``
    (wall time per step) and ``backends_`` (what actually ran each step: cuML on the GPU, or
    the CPU library — cuml.accel falls back to the CPU silently for settings cuML lacks).

    Keywords are the top c-TF-IDF terms that occur in at least ``min_word_docs`` of the topic's
    documents (:func:`keywords`): plain c-TF-IDF ranks a word from one document of a small topic
    highly, and such words never co-occur. The rule belongs to the keywords, not to the
    clustering — ``benchmarks/topic_clustering.py`` applies it to BERTopic's clusters too.

    ``prediction_data=True`` keeps what :meth:`predict` needs to label new documents the way BERTopic's
    ``transform`` does — UMAP's ``transform`` (through the kept neighbour index) then HDBSCAN's
    ``approximate_predict``, whose prediction data HDBSCAN builds during the fit; outliers stay outliers,
    unlike :meth:`assign`. ``benchmarks/topic_million.py`` measures both routes against full fits.
    """

    def __init__(self, *, n_neighbors: int = 15, n_components: int = 5, min_cluster_size: int = 10,
                 min_samples: int | None = 5, pca_components: int | None = None, n_epochs: int | None = 100,
                 init: str = "auto", top_n: int = 10, min_word_docs: int = 3, neighbors: str = "auto",
                 prediction_data: bool = False, random_state: int | None = None) -> None:
        self.n_neighbors = n_neighbors
        self.init = init
        self.n_components = n_components
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.pca_components = pca_components
        self.n_epochs = n_epochs
        self.top_n = top_n
        self.min_word_docs = min_word_docs
        self.neighbors = neighbors
        self.prediction_data = prediction_data
        self.random_state = random_state

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"TopicModel({params})"

    def _on_gpu(self) -> bool:
        # cuml.accel switched on now — by sb.begin, `python -m cuml.accel` or `%load_ext cuml.accel` — not the session
        return devices.cuml_accel_active()

    def umap_init(self) -> str:
        """UMAP's initial layout: ``pca`` on a CPU (fast with umap-learn); ``spectral`` under cuml.accel,
        because cuML 26.10 refuses ``init='pca'`` and would silently run the whole step on the CPU."""
        if self.init != "auto":
            return self.init
        return "spectral" if self._on_gpu() else "pca"

    def umap_estimator(self, *, n_components: int, min_dist: float, knn=None, n_epochs: int | None = None):
        """The ``umap.UMAP`` this model fits (cuml.accel swaps in cuML's on a GPU path); ``knn`` a precomputed graph."""
        import umap  # noqa: PLC0415

        return umap.UMAP(n_neighbors=self.n_neighbors, n_components=n_components, min_dist=min_dist,
                         metric="euclidean" if knn else "cosine", init=self.umap_init(), n_epochs=n_epochs,
                         random_state=self.random_state, **({"precomputed_knn": knn} if knn else {}))

    def hdbscan_estimator(self):
        """The ``hdbscan.HDBSCAN`` this model fits (cuml.accel swaps in cuML's on a GPU path)."""
        import hdbscan  # noqa: PLC0415

        return hdbscan.HDBSCAN(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
                               prediction_data=self.prediction_data)

    def _own_neighbours(self) -> bool:
        if self.neighbors not in ("auto", "umap", "pca-nndescent"):
            raise InputError(f"neighbors must be 'auto', 'umap' or 'pca-nndescent'. Got {self.neighbors!r} instead.")
        if self.neighbors == "auto":
            return not self._on_gpu()  # cuML's UMAP builds the graph on the GPU itself
        return self.neighbors == "pca-nndescent"

    def fit(self, docs: Sequence[str], embeddings: np.ndarray) -> TopicModel:
        """Cluster ``embeddings`` (one row per document) and describe each cluster by its words in ``docs``."""
        import warnings  # noqa: PLC0415

        from ..accel import backend_of  # noqa: PLC0415

        embeddings = np.asarray(embeddings, dtype=np.float32)
        if len(docs) != len(embeddings):
            raise InputError(f"{len(docs)} documents but {len(embeddings)} embeddings: they must pair up row by row.")
        if len(docs) <= max(self.n_neighbors, self.min_cluster_size) * 2:
            raise InputError(f"{len(docs)} documents are too few for n_neighbors={self.n_neighbors} and "
                             f"min_cluster_size={self.min_cluster_size}: use at least a few hundred.")
        watch = Stopwatch()
        data, knn, self._pca = embeddings, None, None
        if self._own_neighbours():
            with watch.step("neighbours"):
                data, graph, self._pca, search = _neighbours(embeddings, n_neighbors=self.n_neighbors,
                                                             pca_components=self.pca_components,
                                                             random_state=self.random_state)
            # a search index only where predict() needs UMAP's transform (exact: see _ExactIndex)
            knn = (*graph, _ExactIndex(data) if self.prediction_data else None)
            watch.backends["neighbours"] = search
        reducer = self.umap_estimator(n_components=self.n_components, min_dist=0.0, knn=knn, n_epochs=self.n_epochs)
        with watch.step("umap"), warnings.catch_warnings():
            # UMAP notes that a seed disables its parallelism and that a precomputed k-NN
            # graph disables transform(); both are choices made here on purpose.
            warnings.filterwarnings("ignore", message=".*(random_state|precomputed_knn|n_jobs).*")
            self.embedding_ = np.asarray(reducer.fit_transform(data))
        watch.backends["umap"] = backend_of(reducer)
        clusterer = self.hdbscan_estimator()
        with watch.step("hdbscan"):
            self.labels_ = np.asarray(clusterer.fit_predict(self.embedding_), dtype=int)
        watch.backends["hdbscan"] = backend_of(clusterer)
        self._reducer, self._clusterer = (reducer, clusterer) if self.prediction_data else (None, None)
        with watch.step("keywords"):
            bag = vectorizer()
            self.counts_ = bag.fit_transform(docs)
            self.vocabulary_ = bag.get_feature_names_out()
            self.topic_words_ = keywords(self.counts_, self.labels_, self.vocabulary_, top_n=self.top_n,
                                         min_word_docs=self.min_word_docs)
        watch.backends["keywords"] = "scikit-learn + scipy (CPU)"
        self._knn, self._data = knn, data  # reused by map_2d: the neighbour graph is the expensive part
        self.seconds_ = watch.seconds
        self.backends_ = watch.backends
        return self

    @property
    def n_topics_(self) -> int:
        return len(self.topic_words_)

    def topic_info(self, names: dict[int, str] | None = None):
        """One row per topic, largest first: ``topic``, ``name``, ``size``, ``share``, ``words``."""
        import pandas as pd  # noqa: PLC0415

        sizes = pd.Series(self.labels_).value_counts()
        rows = [{"topic": k, "name": (names or {}).get(k, "_".join(w[:3])), "size": int(sizes.get(k, 0)),
                 "share": sizes.get(k, 0) / len(self.labels_), "words": ", ".join(w)}
                for k, w in self.topic_words_.items()]
        return pd.DataFrame(rows).sort_values(["size", "topic"], ascending=[False, True]).reset_index(drop=True)

    def representative_docs(self, docs: Sequence[str], embeddings: np.ndarray, n: int = 3) -> dict[int, list[str]]:
        """The ``n`` documents of each topic closest (cosine) to the topic's mean embedding."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        out: dict[int, list[str]] = {}
        for topic in self.topic_words_:
            members = np.flatnonzero(self.labels_ == topic)
            centre = embeddings[members].mean(axis=0)
            closest = members[np.argsort(-(embeddings[members] @ centre), kind="stable")[:n]]
            out[topic] = [docs[i] for i in closest]
        return out

    def centroids(self, embeddings: np.ndarray) -> dict[int, np.ndarray]:
        """Each topic's mean embedding, scaled to unit length (topic → vector)."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if len(embeddings) != len(self.labels_):
            raise InputError(f"{len(embeddings)} embeddings for {len(self.labels_)} documents: pass the fitted ones.")
        out = {}
        for topic in sorted(self.topic_words_):
            centre = embeddings[self.labels_ == topic].mean(axis=0)
            out[topic] = centre / max(float(np.linalg.norm(centre)), 1e-12)
        return out

    def assign(self, new: np.ndarray, fitted: np.ndarray, *, threshold: float | None = None,
               batch: int = 65_536) -> np.ndarray:
        """Topic of each row of ``new``: the fitted topic whose centroid (from ``fitted``, the embeddings this model
        was fitted on) is most similar by cosine; −1 below ``threshold``. How a model fitted on a sample labels the
        rest of a corpus too large to fit whole (``batch`` rows at a time bounds the memory)."""
        centres = self.centroids(fitted)
        if not centres:
            raise InputError("This model found no topics: nothing to assign documents to.")
        topics = np.fromiter(centres, dtype=int)
        matrix = np.stack([centres[t] for t in topics]).T
        new = np.asarray(new, dtype=np.float32)
        if new.ndim != 2 or new.shape[1] != matrix.shape[0]:
            raise InputError(f"new embeddings must be rows of {matrix.shape[0]} numbers. Got shape {new.shape}.")
        out = np.empty(len(new), dtype=int)
        for start in range(0, len(new), batch):
            rows = new[start:start + batch]
            rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
            sims = rows @ matrix
            best = sims.argmax(axis=1)
            labels = topics[best]
            if threshold is not None:
                labels = np.where(sims[np.arange(len(rows)), best] >= threshold, labels, -1)
            out[start:start + len(rows)] = labels
        return out

    def predict(self, new: np.ndarray) -> np.ndarray:
        """Topic of each row of ``new`` (−1 = outlier), as a full fit would place it: UMAP's ``transform`` into the
        fitted layout, then HDBSCAN's ``approximate_predict`` (cuML's on a GPU path). Needs ``prediction_data=True``.
        On a copy from :meth:`reduce` the topics are the merged ones; outliers stay outliers (no reassignment)."""
        import warnings  # noqa: PLC0415

        if getattr(self, "_clusterer", None) is None:
            raise InputError("predict() needs a model fitted with prediction_data=True: "
                             "TopicModel(prediction_data=True).fit(docs, embeddings); or use assign() (nearest centroid).")
        new = np.asarray(new, dtype=np.float32)
        if self._pca is not None:
            new = self._pca.transform(new).astype(np.float32)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(random_state|n_jobs).*")
            reduced = np.asarray(self._reducer.transform(new), dtype=np.float32)
        gpu = getattr(self._clusterer, "_gpu", None)
        if gpu is not None and self.backends_.get("hdbscan") == "cuML (GPU)":
            from cuml.cluster.hdbscan import approximate_predict  # noqa: PLC0415
            labels, _ = approximate_predict(gpu, reduced)
        else:
            from hdbscan import approximate_predict  # noqa: PLC0415
            labels, _ = approximate_predict(self._clusterer, reduced)
        labels = np.asarray(labels, dtype=int)
        merged = getattr(self, "merged_", None)  # a copy from reduce(): HDBSCAN's topics → the merged ones
        return labels if merged is None else np.array([merged.get(int(t), -1) for t in labels], dtype=int)

    def reduce(self, embeddings: np.ndarray, *, n_topics: int | None = None, distance: float | None = None,
               by: str = "embeddings") -> TopicModel:
        """A copy with similar topics merged — to ``n_topics`` topics, or every merge closer than ``distance``
        (:func:`~sparkbooks.topics.merge.reduce_topics`). This model is left as it was."""
        from .merge import reduce_topics  # noqa: PLC0415

        return reduce_topics(self, embeddings, n_topics=n_topics, distance=distance, by=by)

    def reassign_outliers(self, embeddings: np.ndarray, *, threshold: float = 0.5) -> TopicModel:
        """A copy in which each outlier joins the topic whose centroid is most similar (cosine ≥ ``threshold``)
        (:func:`~sparkbooks.topics.merge.reassign_outliers`)."""
        from .merge import reassign_outliers  # noqa: PLC0415

        return reassign_outliers(self, embeddings, threshold=threshold)

    def map_2d(self) -> np.ndarray:
        """A 2-D UMAP layout of the same documents for plotting, reusing the fitted neighbour graph."""
        import warnings  # noqa: PLC0415

        reducer = self.umap_estimator(n_components=2, min_dist=0.1, knn=self._knn)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(random_state|precomputed_knn|n_jobs).*")
            return np.asarray(reducer.fit_transform(self._data))
