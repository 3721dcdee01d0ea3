"""Topic modelling on sentence embeddings: UMAP → HDBSCAN → class-based TF-IDF, with quality measures.

The estimators are umap-learn's ``UMAP`` and the ``hdbscan`` package's ``HDBSCAN``, imported
only when used, so that ``cuml.accel`` (switched on by :func:`sparkbooks.begin` on a working
GPU) replaces both without a code change.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..exceptions import InputError
from ..session import active
from ..timing import Stopwatch

__all__ = [
    "CTfidf", "TopicModel", "class_doc_frequency", "clean_text", "ctfidf", "hierarchy_figure", "keywords", "name_topics",
    "npmi_coherence", "show", "top_terms", "topic_diversity", "topic_map", "topics_over_time", "vectorizer",
]

_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE_RT = re.compile(r"^RT\s+@\w+:?\s*|@\w+")


def clean_text(texts: Sequence[str]) -> list[str]:
    """Texts without URLs, retweet prefixes and @handles, HTML entities decoded, whitespace collapsed (links carry no topic)."""
    return [" ".join(_HANDLE_RT.sub(" ", _URL.sub(" ", html.unescape(t))).split()) for t in texts]


def vectorizer(**overrides):
    """The bag-of-words used for keywords and coherence: English stop words removed, words of ≥ 3 letters.

    ``min_df`` drops words in fewer than 2 documents (typos, IDs); the same object must serve
    keywords and NPMI so both see the same vocabulary.
    """
    from sklearn.feature_extraction.text import CountVectorizer  # noqa: PLC0415

    options = {"stop_words": "english", "token_pattern": r"(?u)\b[a-zA-Z][a-zA-Z]{2,}\b", "min_df": 2, "lowercase": True}
    return CountVectorizer(**{**options, **overrides})


@dataclass(frozen=True)
class CTfidf:
    """Class-based TF-IDF weights (sparse, classes × terms) and the class of each row."""

    weights: object
    classes: np.ndarray


def ctfidf(counts, labels: np.ndarray) -> CTfidf:
    """Class-based TF-IDF: one row per class in ``np.unique(labels)`` order, one column per term.

    ``W[c, t] = tf[c, t] · log(1 + A / f[t])`` with ``tf`` the class's L1-normalised term counts,
    ``A`` the mean number of words per class and ``f[t]`` the term's count over all classes —
    the weighting of BERTopic (Grootendorst 2022). ``counts`` is a documents × terms sparse matrix.
    Returns the weights (sparse, classes × terms) and the class of each row.
    """
    import scipy.sparse as sp  # noqa: PLC0415
    from sklearn.preprocessing import normalize  # noqa: PLC0415

    classes, index = np.unique(labels, return_inverse=True)
    membership = sp.csr_matrix((np.ones(len(index)), (index, np.arange(len(index)))), shape=(len(classes), len(index)))
    per_class = (membership @ counts).tocsr().astype(np.float64)
    term_total = np.asarray(per_class.sum(axis=0)).ravel()
    mean_words = per_class.sum() / len(classes)
    idf = np.log1p(mean_words / np.maximum(term_total, 1.0))
    return CTfidf(normalize(per_class, norm="l1", axis=1) @ sp.diags(idf), classes)


def class_doc_frequency(counts, labels: np.ndarray):
    """In how many of each class's documents each term occurs (sparse, classes in ``np.unique`` order × terms)."""
    import scipy.sparse as sp  # noqa: PLC0415

    classes, index = np.unique(labels, return_inverse=True)
    membership = sp.csr_matrix((np.ones(len(index)), (index, np.arange(len(index)))), shape=(len(classes), len(index)))
    return (membership @ (counts > 0).astype(np.float64)).tocsr()


def top_terms(weights, vocabulary: np.ndarray, n: int = 10) -> list[list[str]]:
    """The ``n`` highest-weighted terms of each row of ``weights`` (ties broken by term order)."""
    dense = weights.toarray() if hasattr(weights, "toarray") else np.asarray(weights)
    order = np.argsort(-dense, axis=1, kind="stable")[:, :n]
    return [[str(vocabulary[j]) for j in row if dense[i, j] > 0] for i, row in enumerate(order)]


def keywords(counts, labels: np.ndarray, vocabulary: np.ndarray, *, top_n: int = 10,
             min_word_docs: int = 1) -> dict[int, list[str]]:
    """The ``top_n`` c-TF-IDF words of each cluster (outliers, label −1, excluded): the one keyword rule,
    whichever pipeline made the clusters — so that two pipelines are scored alike.

    ``min_word_docs`` > 1 keeps only words found in at least that many of the cluster's documents
    (a word from one document describes that document, not the topic); lists can then be shorter.
    """
    keyed = ctfidf(counts, labels)
    weights = keyed.weights
    if min_word_docs > 1:
        weights = weights.multiply(class_doc_frequency(counts, labels) >= min_word_docs).tocsr()
    words = top_terms(weights, vocabulary, top_n)
    return {int(c): w for c, w in zip(keyed.classes, words) if c >= 0}


def npmi_coherence(topics: Sequence[Sequence[str]], counts, vocabulary: np.ndarray, *,
                   eps: float | None = None) -> np.ndarray:
    """Mean normalised PMI of each topic's word pairs, from document co-occurrence in ``counts``.

    ``NPMI(a, b) = log(p(a,b) / (p(a) p(b))) / −log p(a,b)`` with probabilities = share of
    documents containing the words. ``eps=None``: a pair that never co-occurs scores −1 (its
    limit). ``eps`` > 0 adds it to ``p(a,b)`` as gensim's ``c_npmi`` does (1e-12 there), which
    scores such a pair near 0 instead — the two differ most for topics whose words never meet.
    Range −1 … 1; a topic with fewer than two words in the vocabulary scores NaN.
    """
    where = {w: i for i, w in enumerate(vocabulary)}
    present = (counts > 0).astype(np.float64).tocsc()
    n_docs = present.shape[0]
    scores = np.full(len(topics), np.nan)
    for k, words in enumerate(topics):
        cols = [where[w] for w in words if w in where]
        if len(cols) < 2:
            continue
        sub = present[:, cols]
        joint = (sub.T @ sub).toarray() / n_docs
        single = np.diag(joint).copy()
        i, j = np.triu_indices(len(cols), k=1)
        p_ab = joint[i, j]
        with np.errstate(divide="ignore", invalid="ignore"):
            if eps is None:
                npmi = np.where(p_ab > 0, np.log(p_ab / (single[i] * single[j])) / -np.log(p_ab), -1.0)
            else:
                npmi = np.log((p_ab + eps) / (single[i] * single[j])) / -np.log(p_ab + eps)
        npmi[(p_ab >= 1.0)] = 1.0  # both words in every document
        scores[k] = float(np.mean(npmi))
    return scores


def topic_diversity(topics: Sequence[Sequence[str]]) -> float:
    """Share of distinct words among all topics' top words (1 = no word repeats across topics)."""
    words = [w for topic in topics for w in topic]
    return len(set(words)) / len(words) if words else float("nan")


def _neighbours(embeddings: np.ndarray, *, n_neighbors: int, pca_components: int | None,
                random_state: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (optionally PCA-reduced) input and its approximate k nearest neighbours by NN-descent, self first.

    MiniLM vectors are unit length, so Euclidean neighbours are cosine neighbours. PCA makes each
    distance cheaper but, measured on the health tweets, costs agreement with the outlets (NMI
    0.163 at 50 components vs 0.171 on all 384 at 63k tweets), so it is off by default.
    """
    import pynndescent  # noqa: PLC0415
    from sklearn.decomposition import PCA  # noqa: PLC0415

    data = embeddings
    if pca_components and pca_components < embeddings.shape[1] and len(embeddings) > pca_components:
        data = PCA(pca_components, random_state=random_state or 0).fit_transform(embeddings)
    index = pynndescent.NNDescent(data, n_neighbors=n_neighbors, random_state=random_state, low_memory=True,
                                  n_jobs=None if random_state is not None else -1)
    indices, distances = index.neighbor_graph
    return data, indices, distances


class TopicModel:
    """Topics from sentence embeddings: NN-descent graph → UMAP → HDBSCAN → class-based TF-IDF keywords.

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
    """

    def __init__(self, *, n_neighbors: int = 15, n_components: int = 5, min_cluster_size: int = 10,
                 min_samples: int | None = 5, pca_components: int | None = None, n_epochs: int | None = 100,
                 init: str = "auto", top_n: int = 10, min_word_docs: int = 3, neighbors: str = "auto",
                 random_state: int | None = None) -> None:
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
        self.random_state = random_state

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"TopicModel({params})"

    def _on_gpu(self) -> bool:
        session = active()
        return session is not None and "cuml.accel" in session.accel.active

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

        return hdbscan.HDBSCAN(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples)

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
        data, knn = embeddings, None
        if self._own_neighbours():
            with watch.step("neighbours"):
                data, indices, distances = _neighbours(embeddings, n_neighbors=self.n_neighbors,
                                                       pca_components=self.pca_components, random_state=self.random_state)
            knn = (indices, distances, None)
            watch.backends["neighbours"] = "pynndescent (CPU)"
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

    def reduce(self, embeddings: np.ndarray, *, n_topics: int | None = None, distance: float | None = None,
               by: str = "embeddings") -> TopicModel:
        """A copy with similar topics merged — to ``n_topics`` topics, or every merge closer than ``distance``.

        Topics are joined by average-linkage agglomeration (cosine distance) of their centroid
        embeddings (``by="embeddings"``, as BERTopic's ``reduce_topics`` joins topic embeddings) or of
        their c-TF-IDF word weights (``by="words"``, BERTopic's ``use_ctfidf=True``); keywords are recomputed by the same rule
        on the merged topics, outliers stay outliers, and new topic numbers run from the largest (0).
        The copy keeps ``hierarchy_`` (scipy's linkage matrix over the original topics, for
        :func:`hierarchy_figure`), ``merged_`` (original topic → new topic), ``parent_topics_`` and
        ``parent_words_`` (the original topics and their keywords).
        This model is left as it was.
        """
        import copy  # noqa: PLC0415

        from scipy.cluster.hierarchy import fcluster, linkage  # noqa: PLC0415

        if (n_topics is None) == (distance is None):
            raise InputError("reduce needs exactly one of n_topics (a target count) or distance (a cosine distance cut).")
        if n_topics is not None and not 1 <= n_topics:
            raise InputError(f"n_topics={n_topics}: ask for at least one topic.")
        if by not in ("embeddings", "words"):
            raise InputError(f"by={by!r}: merge by 'embeddings' (topic centroids) or 'words' (c-TF-IDF weights).")
        original = sorted(self.topic_words_)
        if len(original) < 2:
            raise InputError(f"{len(original)} topic(s): nothing to merge.")
        if by == "embeddings":
            centres = self.centroids(embeddings)
            points = np.stack([centres[t] for t in original])
        else:
            keyed = ctfidf(self.counts_, self.labels_)
            rows = {int(c): i for i, c in enumerate(keyed.classes)}
            points = keyed.weights[[rows[t] for t in original]].toarray()
        tree = linkage(points, method="average", metric="cosine")
        groups = (fcluster(tree, t=n_topics, criterion="maxclust") if n_topics is not None
                  else fcluster(tree, t=distance, criterion="distance"))
        group_of = dict(zip(original, groups.tolist()))
        sizes: dict[int, int] = {}
        for topic, group in group_of.items():
            sizes[group] = sizes.get(group, 0) + int((self.labels_ == topic).sum())
        order = sorted(sizes, key=lambda g: (-sizes[g], g))
        renumber = {g: i for i, g in enumerate(order)}
        merged = {t: renumber[g] for t, g in group_of.items()}
        reduced = copy.copy(self)
        reduced.labels_ = np.array([merged.get(int(label), -1) for label in self.labels_], dtype=int)
        reduced.topic_words_ = keywords(self.counts_, reduced.labels_, self.vocabulary_, top_n=self.top_n,
                                        min_word_docs=self.min_word_docs)
        reduced.hierarchy_, reduced.parent_topics_, reduced.merged_ = tree, original, merged
        reduced.parent_words_ = {t: self.topic_words_[t] for t in original}
        return reduced

    def reassign_outliers(self, embeddings: np.ndarray, *, threshold: float = 0.5) -> TopicModel:
        """A copy in which each outlier joins the topic whose centroid is most similar (cosine ≥ ``threshold``).

        HDBSCAN leaves documents it cannot place confidently as outliers (−1); users usually want
        most of them in a topic. ``threshold`` keeps the ones unlike every topic out. Keywords are
        recomputed; ``reassigned_`` counts the moved documents.
        """
        import copy  # noqa: PLC0415

        if not -1.0 <= threshold <= 1.0:
            raise InputError(f"threshold={threshold}: a cosine similarity lies in [-1, 1].")
        embeddings = np.asarray(embeddings, dtype=np.float32)
        centres = self.centroids(embeddings)
        topics_, matrix = list(centres), np.stack(list(centres.values()))
        outliers = np.flatnonzero(self.labels_ < 0)
        unit = embeddings[outliers] / np.maximum(np.linalg.norm(embeddings[outliers], axis=1, keepdims=True), 1e-12)
        similarity = unit @ matrix.T
        best = similarity.argmax(axis=1)
        moved = similarity[np.arange(len(outliers)), best] >= threshold
        model = copy.copy(self)
        model.labels_ = self.labels_.copy()
        model.labels_[outliers[moved]] = np.array(topics_)[best[moved]]
        model.topic_words_ = keywords(self.counts_, model.labels_, self.vocabulary_, top_n=self.top_n,
                                      min_word_docs=self.min_word_docs)
        model.reassigned_ = int(moved.sum())
        return model

    def map_2d(self) -> np.ndarray:
        """A 2-D UMAP layout of the same documents for plotting, reusing the fitted neighbour graph."""
        import warnings  # noqa: PLC0415

        reducer = self.umap_estimator(n_components=2, min_dist=0.1, knn=self._knn)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(random_state|precomputed_knn|n_jobs).*")
            return np.asarray(reducer.fit_transform(self._data))


_NAME_SYSTEM = "You name topics found in a collection of {what}. Reply with the name only: 2 to 5 words."
_NAME_EXAMPLE = ("Keywords: flu, vaccine, virus, outbreak, cases, cdc\nExamples:\n- CDC: flu season is off to an early start\n"
                 "- Why this year's flu vaccine works less well", "Flu season and vaccines")


def _name_messages(what: str, words: str, examples: list[str]) -> list[dict[str, str]]:
    question = f"Keywords: {words}\nExamples:\n" + "\n".join(f"- {text[:200]}" for text in examples)
    return [{"role": "system", "content": _NAME_SYSTEM.format(what=what)},
            {"role": "user", "content": _NAME_EXAMPLE[0]}, {"role": "assistant", "content": _NAME_EXAMPLE[1]},
            {"role": "user", "content": question}]


def name_topics(endpoint, model: TopicModel, examples: dict[int, list[str]], *, what: str = "documents",
                max_topics: int | None = None, seed: int = 0) -> dict[int, str]:
    """A short name per topic from an LLM at ``endpoint``, given its keywords and example documents.

    Topics are named largest first; ``max_topics`` caps how many get an LLM name (the rest keep
    their keywords). A reply is cut to its first line and six words; an empty one falls back to
    the first three keywords.
    """
    from ..llm import chat  # noqa: PLC0415

    info = model.topic_info()
    names: dict[int, str] = {}
    for rank, row in enumerate(info.itertuples()):
        fallback = "_".join(model.topic_words_[row.topic][:3])
        if max_topics is not None and rank >= max_topics:
            names[row.topic] = fallback
            continue
        messages = _name_messages(what, row.words, examples[row.topic])
        reply = chat(endpoint, messages, max_tokens=16, seed=seed, stream=False)
        words = reply.text.strip().splitlines()[0].split() if reply.text.strip() else []
        name = " ".join(words[:6]).strip("\"'*.:") + (" …" if len(words) > 6 else "")
        names[row.topic] = name or fallback
    return names


def _wrap(text: str, width: int = 60, limit: int = 240) -> str:
    import html  # noqa: PLC0415
    import textwrap  # noqa: PLC0415

    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return "<br>".join(html.escape(line) for line in textwrap.wrap(text, width))


def topic_map(coords: np.ndarray, labels: np.ndarray, names: dict[int, str], *, hover: Sequence[str],
              top: int = 20, title: str = "Documents by topic"):
    """An interactive plotly scatter of the 2-D layout, coloured by topic, with each document on hover.

    The ``top`` largest topics get their own colour and legend entry; smaller topics are drawn
    as "other topics" and outliers in light grey, so the legend stays readable.
    """
    import plotly.graph_objects as go  # noqa: PLC0415

    labels = np.asarray(labels)
    sizes = {k: int(np.sum(labels == k)) for k in names}
    shown = sorted(names, key=lambda k: (-sizes[k], k))[:top]
    groups = [(f"{k}: {names[k]}", labels == k, None) for k in shown]
    rest = ~np.isin(labels, shown) & (labels >= 0)
    groups += [("other topics", rest, "#9e9e9e"), ("outliers", labels < 0, "#dddddd")]
    figure = go.Figure()
    kind = go.Scattergl if len(labels) > 20_000 else go.Scatter  # SVG is exact and light up to ~20k points
    for name, mask, colour in groups:
        if not mask.any():
            continue
        idx = np.flatnonzero(mask)
        figure.add_trace(kind(x=coords[idx, 0], y=coords[idx, 1], mode="markers", name=f"{name} ({len(idx):,})",
                              text=[_wrap(hover[i]) for i in idx], hovertemplate="%{text}<extra>" + _wrap(name, 40) + "</extra>",
                              marker={"size": 4, "opacity": 0.75 if colour is None else 0.4,
                                      **({"color": colour} if colour else {})}))
    figure.update_layout(title=title, height=620, template="plotly_white", legend={"font": {"size": 10}, "itemsizing": "constant"},
                         xaxis={"visible": False}, yaxis={"visible": False}, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


def show(figure):
    """The figure as self-contained HTML (plotly.js inline): interactive in JupyterLab and in the static guide, offline."""
    from IPython.display import HTML  # noqa: PLC0415

    return HTML(figure.to_html(include_plotlyjs=True, full_html=False, config={"displaylogo": False}))


def hierarchy_figure(model: TopicModel, names: dict[int, str] | None = None, *, ax=None):
    """The merge tree of a reduced model's original topics (a dendrogram, cosine distance), each leaf named
    (``names`` of the original topics, else their first three keywords) with the topic it joined; a dashed
    line marks where the reduction cut the tree."""
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from scipy.cluster.hierarchy import dendrogram  # noqa: PLC0415

    if getattr(model, "hierarchy_", None) is None:
        raise InputError("hierarchy_figure needs a model returned by TopicModel.reduce().")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, max(3.0, 0.22 * len(model.parent_topics_))))
    labels = [f"{t}: {(names or {}).get(t) or ', '.join(model.parent_words_[t][:3])} → {model.merged_[t]}"
              for t in model.parent_topics_]
    dendrogram(model.hierarchy_, orientation="right", labels=labels, ax=ax, color_threshold=0,
               above_threshold_color="grey", leaf_font_size=7)
    heights = np.sort(model.hierarchy_[:, 2])
    made = len(model.parent_topics_) - len(set(model.merged_.values()))  # merges that the reduction made
    cut = heights[0] / 2 if made == 0 else heights[-1] * 1.02 if made == len(heights) else heights[made - 1:made + 1].mean()
    ax.axvline(cut, ls="--", c="tab:red", lw=1)
    ax.set_xlabel("cosine distance between topic centroids (average linkage)")
    return ax


def topics_over_time(labels: np.ndarray, dates, names: dict[int, str], *, top: int = 8, freq: str = "Q",
                     min_docs: int = 30):
    """Share of each period's documents in each of the ``top`` largest topics (periods × topics).

    Periods with fewer than ``min_docs`` documents are left out: a share of a handful is noise.
    """
    import pandas as pd  # noqa: PLC0415

    frame = pd.DataFrame({"topic": np.asarray(labels), "date": pd.to_datetime(dates)}).dropna()
    shown = frame.loc[frame["topic"] >= 0, "topic"].value_counts().index[:top]
    period = frame["date"].dt.to_period(freq).dt.start_time
    counts = pd.crosstab(period, frame["topic"])
    totals = counts.sum(axis=1)
    shares = counts.div(totals, axis=0).loc[totals >= min_docs, list(shown)]
    return shares.rename(columns={k: f"{k}: {names.get(k, k)}" for k in shown})
