"""A refusal gate decided in code: refuse before the LLM is asked when retrieval finds nothing close enough.

A rule in front of the LLM (the guide calibrates it, scores it out of fold, and answers through it in Step 6 and
the ask box): each question's **gate score** is the cosine similarity of its best dense match (:func:`top_scores`);
a question scoring below a threshold is refused without calling the LLM (:class:`Gate`). The threshold is calibrated on answerable questions and on **near-miss**
unanswerable ones — questions about topics the documents discuss, asking for facts they do not
hold — so the gate is tested where it is hard, not on off-topic questions any threshold refuses.

* :func:`auroc` — how well the score separates the two kinds (Mann–Whitney), with a stratified
  bootstrap interval;
* :func:`threshold_for` — the highest threshold that refuses at most ``max_false_refusal`` of the
  answerable questions it is calibrated on;
* :func:`auroc_difference_interval` — a paired bootstrap of the AUROC difference of two scores of the same
  questions (the gate against question length, the baseline a practitioner tries first);
* :func:`system_score` — the whole answer-or-abstain system scored as SQuAD 2.0 does (HasAns / NoAns);
* :func:`calibrate` — the gate on all the questions, its operating point estimated out of fold
  (two seeded folds: the threshold chosen on one half is scored on the other), and the calibration
  table over a grid of thresholds.

The LLM's own refusals ("not in the documents") are counted apart from the gate's (``finish_reason == "gate"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...exceptions import InputError
from ...intervals import Interval
from . import answer as _answer
from .index import VectorIndex

__all__ = ["Calibration", "Gate", "auroc", "auroc_difference_interval", "auroc_interval", "calibrate", "refusing_everything", "system_right", "system_score",
           "threshold_for", "top_scores"]


def top_scores(index: VectorIndex, embed: Callable[[Sequence[str]], np.ndarray], questions: Sequence[str]) -> np.ndarray:
    """The cosine similarity of each question's nearest chunk (unit vectors, inner product), embedded as queries."""
    if not questions:
        return np.zeros(0)
    vectors = getattr(embed, "query", embed)(list(questions))
    return np.array([row[0][1] if row else -1.0 for row in index.search(vectors, 1)], dtype=float)


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a positive scores above a negative), ties counting one half: the area under the ROC curve.

    >>> auroc([0.9, 0.8], [0.1, 0.8])
    0.875
    """
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def auroc_interval(positive: Sequence[float], negative: Sequence[float], *, seed: int = 0, n_boot: int = 2000) -> Interval:
    """95% percentile bootstrap interval of :func:`auroc`, resampling each class on its own (stratified)."""
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    rng = np.random.default_rng(seed)
    values = [auroc(pos[rng.integers(0, len(pos), len(pos))], neg[rng.integers(0, len(neg), len(neg))])
              for _ in range(n_boot)]
    return Interval(float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))


def auroc_difference_interval(a: tuple[Sequence[float], Sequence[float]], b: tuple[Sequence[float], Sequence[float]], *,
                              seed: int = 0, n_boot: int = 2000) -> Interval:
    """95% paired bootstrap interval of ``auroc(*a) - auroc(*b)``: two scores (positive, negative) of the same
    questions, each resample drawing the same questions for both (stratified by kind)."""
    (pa, na), (pb, nb) = [(np.asarray(p, dtype=float), np.asarray(n, dtype=float)) for p, n in (a, b)]
    if len(pa) != len(pb) or len(na) != len(nb):
        raise InputError("the two scores must be of the same questions (equal counts of each kind)")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        i, j = rng.integers(0, len(pa), len(pa)), rng.integers(0, len(na), len(na))
        values.append(auroc(pa[i], na[j]) - auroc(pb[i], nb[j]))
    return Interval(float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))


def threshold_for(answerable: Sequence[float], *, max_false_refusal: float = 0.10) -> float:
    """The highest threshold that refuses (score < threshold) at most ``max_false_refusal`` of ``answerable``.

    >>> threshold_for([0.5, 0.6, 0.7, 0.8, 0.9, 0.55, 0.65, 0.75, 0.85, 0.95], max_false_refusal=0.1)
    0.55
    """
    scores = np.sort(np.asarray(answerable, dtype=float))
    allowed = int(np.floor(max_false_refusal * len(scores) + 1e-9))  # answerable questions it may refuse
    return float(scores[min(allowed, len(scores) - 1)])


@dataclass
class Calibration:
    """A calibrated gate and the evidence for it (see :func:`calibrate`)."""

    threshold: float  # chosen on all the questions; refuse when the score is below it
    auroc: float
    auroc_interval: Interval
    refusals: float  # near-miss questions refused, out of fold
    false_refusals: float  # answerable questions refused, out of fold
    n_answerable: int
    n_unanswerable: int
    max_false_refusal: float
    scores: object  # DataFrame: id, kind, score, refused (at the final threshold)
    table: object  # DataFrame: threshold → refusals and false refusals (in sample)
    folds: object  # DataFrame: one row per fold (threshold chosen on the other fold)

    def refuses(self, score: float) -> bool:
        return bool(score < self.threshold)


def calibrate(answerable: Mapping[str, float], unanswerable: Mapping[str, float], *, max_false_refusal: float = 0.10,
              seed: int = 0, grid: int = 9) -> Calibration:
    """Calibrate the gate on question id → score for the answerable and the (near-miss) unanswerable questions.

    The reported refusals and false refusals are **out of fold**: the questions are split in two
    seeded halves (each kind on its own), the threshold chosen on one half (:func:`threshold_for`) is
    applied to the other, and the two halves pooled — so the operating point is not scored on the
    questions that chose it. The final threshold is then chosen on all of them.
    """
    import pandas as pd  # noqa: PLC0415

    pos_ids, neg_ids = list(answerable), list(unanswerable)
    pos, neg = np.array([answerable[i] for i in pos_ids]), np.array([unanswerable[i] for i in neg_ids])
    rng = np.random.default_rng(seed)
    pos_fold = rng.permutation(len(pos)) % 2
    neg_fold = rng.permutation(len(neg)) % 2
    rows, refused_neg, refused_pos = [], np.zeros(len(neg), bool), np.zeros(len(pos), bool)
    for fold in (0, 1):
        t = threshold_for(pos[pos_fold != fold], max_false_refusal=max_false_refusal)
        refused_pos[pos_fold == fold] = pos[pos_fold == fold] < t
        refused_neg[neg_fold == fold] = neg[neg_fold == fold] < t
        rows.append({"scored fold": fold, "threshold (other fold)": t,
                     "refusals": float((neg[neg_fold == fold] < t).mean()),
                     "false refusals": float((pos[pos_fold == fold] < t).mean())})
    threshold = threshold_for(pos, max_false_refusal=max_false_refusal)
    candidates = sorted({threshold, *np.quantile(np.concatenate([pos, neg]), np.linspace(0.1, 0.9, grid)).round(4)})
    table = pd.DataFrame([{"threshold": t, "refusals (near-miss)": float((neg < t).mean()),
                           "false refusals (answerable)": float((pos < t).mean()), "chosen": t == threshold}
                          for t in candidates])
    scores = pd.DataFrame([*({"id": i, "kind": "answerable", "score": s} for i, s in zip(pos_ids, pos)),
                           *({"id": i, "kind": "near-miss", "score": s} for i, s in zip(neg_ids, neg))])
    scores["refused"] = scores["score"] < threshold
    return Calibration(threshold, auroc(pos, neg), auroc_interval(pos, neg, seed=seed),
                       float(refused_neg.mean()), float(refused_pos.mean()), len(pos), len(neg), max_false_refusal,
                       scores, table, pd.DataFrame(rows))


@dataclass
class Gate:
    """The calibrated gate in the answer path: a question whose :func:`top_scores` is below ``threshold`` is refused
    with the refusal text, **without calling the LLM** (``finish_reason == "gate"`` marks it); others go to
    :func:`~sparkbooks.retrieval.rag.answer.answer`."""

    index: VectorIndex
    embed: Callable[[Sequence[str]], np.ndarray]
    threshold: float

    def score(self, question: str) -> float:
        return float(top_scores(self.index, self.embed, [question])[0])

    def answer(self, endpoint, question: str, context, **kwargs) -> _answer.Answer:
        """Refuse below the threshold (the LLM is not asked), else ask ``endpoint`` (``kwargs`` to ``answer``)."""
        if self.score(question) < self.threshold:
            return _answer.Answer(question, False, _answer.REFUSAL, [], [c.id for c in context], valid=True,
                                  finish_reason="gate")
        return _answer.answer(endpoint, question, context, **kwargs)


def system_right(scored) -> list[bool]:
    """Question by question, whether the answer-or-abstain system was exactly right, as :func:`system_score` counts it:
    an answerable question by its exact match, an unanswerable one by a refusal."""
    has = scored["answerable"].to_numpy(dtype=bool)
    refused = scored["refused"].to_numpy(dtype=bool)
    return [bool(r) for r in np.where(has, scored["em"].to_numpy(dtype=float) == 1, refused)]


def refusing_everything(scored) -> list[bool]:
    """The trivial answer-or-abstain baseline question by question: refusing every question is right exactly on the
    unanswerable ones (review 49, round 5: the system scored 0.611 where refusing everything scores 0.667)."""
    return [not bool(h) for h in scored["answerable"].to_numpy(dtype=bool)]


def system_score(scored, answers: Sequence[_answer.Answer]) -> dict[str, float]:
    """The answer-or-abstain system scored as SQuAD 2.0 does, from :func:`~sparkbooks.retrieval.rag.answer.score`'s
    table and the answers in its row order: HasAns EM/F1 (a refusal scores 0), NoAns accuracy (a refusal, by the gate
    or the LLM, is right), overall EM/F1 over both, and the refusal counts split by who refused."""
    gated = np.array([a.finish_reason == "gate" for a in answers], dtype=bool)
    has = scored["answerable"].to_numpy(dtype=bool)
    refused = scored["refused"].to_numpy(dtype=bool)
    em = np.where(has, scored["em"].to_numpy(dtype=float), refused.astype(float))
    f1 = np.where(has, scored["f1"].to_numpy(dtype=float), refused.astype(float))
    nan = float("nan")
    return {"n": len(has), "has_ans": int(has.sum()), "no_ans": int((~has).sum()),
            "has_ans_em": float(em[has].mean()) if has.any() else nan,
            "has_ans_f1": float(f1[has].mean()) if has.any() else nan,
            "no_ans_accuracy": float(em[~has].mean()) if (~has).any() else nan,
            "exact": float(em.mean()) if len(em) else nan, "f1": float(f1.mean()) if len(f1) else nan,
            "gate_refused_has_ans": int((gated & has).sum()), "gate_refused_no_ans": int((gated & ~has).sum()),
            "llm_refused_has_ans": int((refused & ~gated & has).sum()),
            "llm_refused_no_ans": int((refused & ~gated & ~has).sum())}
