"""Did it learn? The tuned (or base) model's greedy answers in torch, and a paired test that respects the clusters.

Part of :mod:`sparkbooks.training.finetune` (which re-exports every public name here).
"""

from __future__ import annotations

import itertools
import random
import warnings
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import InputError
from .finetune_data import Task, _require_training

if TYPE_CHECKING:
    from ..intervals import Paired

__all__ = ["claim_sentences", "clustered_sign_flip", "evaluate", "load", "stricter_p"]


def load(base: Path, adapter: Path | None = None, *, dtype: str = "float32", device: str = "cpu"):
    """(model, tokenizer) in eval mode on ``device``: the base, or the base with a LoRA adapter merged in."""
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

    _require_training()
    _quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype)).to(device)
    if adapter is not None:
        from peft import PeftModel  # noqa: PLC0415

        with warnings.catch_warnings():  # peft 0.21 calls a transformers alias deprecated in 5.x: not the reader's concern
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.eval(), tokenizer


def _quiet_transformers() -> None:
    """No per-tensor progress bars ("Loading weights", "Writing model shards"): they say nothing a reader needs."""
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    hf_logging.disable_progress_bar()


def evaluate(model, tokenizer, task: Task, *, items: Sequence[dict] | None = None, max_new_tokens: int = 48,
             batch_size: int = 12, threads: int | None = None):
    """Greedy answers in torch for ``items`` (default: the held-out split), scored like a served model's.

    ``threads`` caps torch's intra-op threads while generating (``None``: torch's default, one per core).
    On a shared CPU give 1: when other processes hold the cores, torch's OpenMP threads wait on each
    other (measured on a loaded 2-core VM: 18.6 s per answer with 2 threads, 2.0 s with 1).

    Returns :func:`sparkbooks.llm.score_answers`' table (``valid``, ``<field>_ok``, ``all_ok``, …).
    """
    import torch  # noqa: PLC0415

    from ..llm import score_answers  # noqa: PLC0415

    items = list(task.held_out if items is None else items)
    tokenizer.padding_side = "left"  # generation continues every row from its own last token
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        answers, seconds = _generate(model, tokenizer, task, items, max_new_tokens=max_new_tokens, batch_size=batch_size)
    finally:
        torch.set_num_threads(threads_before)
    return score_answers(items, answers, schema=task.schema, seconds=seconds)


def _generate(model, tokenizer, task: Task, items: list[dict], *, max_new_tokens: int,
              batch_size: int) -> tuple[list[str], list[float]]:
    import time  # noqa: PLC0415

    import torch  # noqa: PLC0415

    answers, seconds = [], []
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        prompts = [tokenizer.apply_chat_template(task.messages(it), add_generation_prompt=True, tokenize=False)
                   for it in chunk]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        per = (time.perf_counter() - started) / len(chunk)
        for row in out[:, batch["input_ids"].shape[1]:]:
            answers.append(tokenizer.decode(row, skip_special_tokens=True))
            seconds.append(per)
    return answers, seconds


def clustered_sign_flip(a_right: Sequence[bool], b_right: Sequence[bool], clusters: Sequence[Hashable], *,
                        exact_up_to: int = 16, n_flips: int = 20_000, seed: int = 0) -> float:
    """Two-sided p-value that systems A and B get the same share right, with whole clusters as the unit.

    Items that share a cluster (here: held-out sentences born in the same city) need not be
    independent, so McNemar's test on items can overstate the evidence. Under "no difference" the
    labels A/B are exchangeable within each item, hence the sign of each cluster's summed difference
    (A right − B right) is a fair coin: the statistic is the total, its null distribution every
    sign pattern over the clusters with a non-zero sum (all of them up to ``exact_up_to`` clusters,
    else ``n_flips`` random ones). With k such clusters the smallest p-value is 2 / 2^k: 8 clusters
    can reach 0.008, 12 reach 0.0005.
    """
    if not len(a_right) == len(b_right) == len(clusters):
        raise InputError(f"a_right, b_right and clusters must have one entry per item "
                         f"(got {len(a_right)}, {len(b_right)}, {len(clusters)}).")
    sums: dict[Hashable, int] = {}
    for a, b, c in zip(a_right, b_right, clusters, strict=True):
        sums[c] = sums.get(c, 0) + int(bool(a)) - int(bool(b))
    d = [abs(v) for v in sums.values() if v]
    observed = abs(sum(v for v in sums.values()))
    if not d:
        return 1.0
    if len(d) <= exact_up_to:
        totals = [abs(sum(s * x for s, x in zip(signs, d, strict=True))) for signs in itertools.product((1, -1), repeat=len(d))]
        return sum(t >= observed for t in totals) / len(totals)
    rng = random.Random(seed)
    hits = sum(abs(sum(x if rng.random() < 0.5 else -x for x in d)) >= observed for _ in range(n_flips))
    return (hits + 1) / (n_flips + 1)


def stricter_p(sentence_p: float, cluster_p: float) -> float:
    """The p-value that decides tuned vs base: the larger of the sentence-level and the cluster-level test's.

    Held-out sentences are nested in countries, so the cluster-level test is the unit of replication a
    reviewer checks; taking the larger p means a difference that holds for sentences but rests on a few
    countries is "not decided" rather than "holds" (review 46 item 1).
    """
    for name, p in (("sentence_p", sentence_p), ("cluster_p", cluster_p)):
        if not 0 <= p <= 1:
            raise InputError(f"{name} must be a p-value in [0, 1] (got {p!r}).")
    return max(float(sentence_p), float(cluster_p))


_VS = "the untuned model decoding under the schema with one worked example"


def claim_sentences(evidence: str, unseen: Paired | None, *, alpha: float = 0.05) -> dict[str, str]:
    """The headline claim's sentence for each verdict, saying no more than the unseen-template test decided.

    ``unseen`` is tuned (A) vs the constrained base (B) by exact McNemar on the held-out sentences from
    templates never trained on (``None``: none were held out). Only when it finds the tuned model better
    does the "holds" sentence say fine-tuning taught more than the format; otherwise the gain is named
    as one on the templates seen in training, with the unseen result beside it (review 46 finding 1:
    the run had tuned 0.36 = base 0.36 there, yet the sentence claimed more than the format).
    """
    if unseen is not None and not 0 <= unseen.p_value <= 1:
        raise InputError(f"unseen.p_value must be a p-value in [0, 1] (got {unseen.p_value!r}).")
    said = evidence.replace("{", "{{").replace("}", "}}")  # the sentences are format strings (sparkbooks.claims)
    both = "with sentences and with countries as the unit"
    if unseen is None:
        holds = (f"on the templates seen in training (no template was held out, so none other was tested), the tuned "
                 f"model gets more held-out sentences all right than {_VS}, {both} ({said})")
    elif unseen.p_value < alpha and unseen.only_a > unseen.only_b:
        holds = (f"fine-tuning taught more than the format: the tuned model gets more held-out sentences all right than "
                 f"{_VS}, {both}, and also on the templates never trained on (exact McNemar p = {unseen.p_value:.2g}) "
                 f"({said})")
    else:
        there = ("the constrained base does better there" if unseen.p_value < alpha
                 else "the two are not told apart there")
        holds = (f"the tuned model gets more held-out sentences all right than {_VS}, {both} — a gain on the templates "
                 f"seen in training: on the templates never trained on {there} (exact McNemar p = "
                 f"{unseen.p_value:.2g}), so this run shows the layouts it was trained on learned, not a gain that "
                 f"carries beyond them ({said})")
    return {"holds": holds,
            "does not hold": f"{_VS} gets more held-out sentences all right than the tuned model ({said})",
            "not decided": (f"the tuned model and {_VS} are not told apart by both tests: this run does not show "
                            f"fine-tuning adding to what the format gives ({said})")}
