"""The fine-tune playbook's data: the model folder, the extraction task and its held-out split, tokenised examples.

Part of :mod:`sparkbooks.training.finetune` (which re-exports every public name here).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import InputError, require

__all__ = ["STAND_IN", "Task", "base_model", "birth_task", "invented_names", "overlap", "tokenise"]

STAND_IN = "stand-in"


def _require_training() -> None:
    for module in ("torch", "transformers", "peft"):
        require(module, extra="models")


def base_model(name: str = STAND_IN) -> Path:
    """A transformers model folder for ``name``: ``"stand-in"`` or a local folder holding ``config.json``.

    The stand-in is :func:`sparkbooks.quant.evaluate.stand_in_folder`: SmolLM2-135M-Instruct dequantised
    from the GGUF the project ships, once, and cached. Nothing is fetched from a model hub.
    """
    if name != STAND_IN:
        path = Path(name).expanduser()
        if not (path / "config.json").is_file():
            raise InputError(
                f"No model folder at {path} (no config.json). Give a local transformers folder, e.g. "
                f"`huggingface-cli download meta-llama/Llama-3.1-8B-Instruct --local-dir {path}` on a machine with "
                f"network access, or model='stand-in'.")
        return path
    _require_training()
    from ..quant.evaluate import stand_in_folder  # noqa: PLC0415

    return stand_in_folder()


@dataclass(frozen=True)
class Task:
    """An extraction task with an answer key: the instruction (system message), the schema, two disjoint splits."""

    name: str
    instruction: str
    schema: dict
    train: list[dict]
    held_out: list[dict]

    def messages(self, item: dict) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.instruction}, {"role": "user", "content": item["text"]}]


_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o")
_CODAS = ("", "", "n", "r", "l", "s", "k", "m")


def invented_names(n: int, *, seed: int = 0, avoid: set[str] = frozenset(), kind: str = "person") -> list[str]:
    """``n`` invented names, every word used once and none in ``avoid``: full names ("Tavel Krosimar", ``kind="person"``)
    or one-word places ("Brodesam", ``kind="city"``).

    Built from syllables, so there is no closed list to exhaust: each held-out sentence gets a person and a
    birthplace of its own, and no name recurs across held-out sentences (items stay independent).
    """
    if kind not in ("person", "city"):
        raise InputError(f"kind must be 'person' or 'city' (got {kind!r}).")
    rng = random.Random(f"invented-{kind}s:{seed}")
    used: set[str] = set(avoid)
    out: list[str] = []

    def word(syllables: int) -> str:
        while True:
            w = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice(_CODAS)
            w = w.capitalize()
            if w not in used:
                used.add(w)
                return w

    while len(out) < n:
        out.append(f"{word(2)} {word(3)}" if kind == "person" else word(3))
    return out


def birth_task(n_train: int = 256, n_held_out: int = 40, *, seed: int = 0,
               unseen_templates: Sequence[str] = (), held_out_share: float = 0.5) -> Task:
    """Birth sentences → {person, city, country, year}; every held-out sentence has a person and a city of its own.

    The unit of replication is the sentence, and nothing in one held-out answer recurs in another but
    its country and perhaps its year: each held-out sentence names an **invented person** and an
    **invented birthplace** (:func:`invented_names`, every word unused elsewhere), in a real country
    (``"Brodesam, Norway"`` — the country is in the sentence, so it is read, not recalled). Years
    come from a closed range, so they are split first: each belongs to the held-out side with
    probability ``held_out_share`` (a hash of the seed and the year); a held-out answer's year is a
    held-out year, and no training sentence contains one anywhere, not even as a distractor. The
    countries recur (24 of them): the guide's country-clustered test
    (:func:`sparkbooks.training.finetune.clustered_sign_flip`) accounts for it. Both splits cycle
    through the templates in turn; ``unseen_templates`` (names from
    :data:`sparkbooks.documents.biographies.TEMPLATES`) are left out of training altogether.
    """
    from ..documents import BIRTH_INSTRUCTION, BIRTH_SCHEMA, birth_sentences  # noqa: PLC0415
    from ..documents.biographies import TEMPLATES  # noqa: PLC0415

    if n_train < 1 or n_held_out < 1:
        raise InputError("n_train and n_held_out must be ≥ 1.")
    if not 0 < held_out_share < 1:
        raise InputError(f"held_out_share must be in (0, 1) (got {held_out_share}).")
    names = [name for name, _, _ in TEMPLATES]
    unknown = sorted(set(unseen_templates) - set(names))
    if unknown or len(set(unseen_templates)) >= len(names):
        raise InputError(f"unseen_templates must name some, not all, of {names} (got {list(unseen_templates)}).")

    def held(kind: str, value: object) -> bool:
        digest = hashlib.sha256(f"{seed}:{kind}:{value}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < held_out_share

    train_templates = [t for t in names if t not in unseen_templates]
    held_by = {t: [] for t in names}
    train_by = {t: [] for t in train_templates}
    need_held, need_train = -(-n_held_out // len(names)), -(-n_train // len(train_templates))
    seen: set[tuple[str, str]] = set()
    banned = re.compile(r"(?!x)x")
    for chunk in range(100):  # rejection sampling from ever more sentences (one chunk suffices at the default share)
        pool = birth_sentences(4_000, seed=seed * 7_919 + 1_000_003 * chunk)
        seen |= {("year", str(item["expected"]["year"])) for item in pool}
        banned = re.compile(r"\b(" + "|".join(sorted((re.escape(v) for k, v in seen if held(k, v)),
                                                     key=len, reverse=True)) + r")\b")
        for item in pool:
            e = item["expected"]
            bucket = held_by[item["template"]]
            if len(bucket) < need_held and held("year", e["year"]):
                bucket.append({**item, "unseen_template": item["template"] in unseen_templates})
            elif (item["template"] in train_by and len(train_by[item["template"]]) < need_train
                  and not banned.search(item["text"])):
                train_by[item["template"]].append(item)
        if all(len(b) >= need_held for b in held_by.values()) and all(len(b) >= need_train for b in train_by.values()):
            break
    else:
        raise InputError(f"Could not draw {n_held_out} held-out and {n_train} training sentences with held_out_share "
                         f"{held_out_share}: move it towards 1/2.")
    # a value first met in a later chunk may have slipped into an earlier training sentence: check once more
    train = [train_by[t][i] for i in range(need_train) for t in train_templates]
    train = [item for item in train if not banned.search(item["text"])][:n_train]
    held_out = [held_by[t][i] for i in range(need_held) for t in names][:n_held_out]
    # one invented person and birthplace per held-out sentence, no word of which occurs in any sentence of either split;
    # its distracting person and city are invented too (a second draw from the same pool), so a held-out sentence sets
    # no familiar training name beside an unfamiliar answer (review 46 item 2)
    words = set(re.findall(r"\w+", " ".join(item["text"] for item in train + held_out)))
    n = len(held_out)
    people = invented_names(2 * n, seed=seed, avoid=words)
    places = invented_names(2 * n, seed=seed, avoid=words | {w for p in people for w in p.split()}, kind="city")
    patterns = {name: _pattern(template) for name, _, template in TEMPLATES}
    held_out = [_renamed(item, patterns[item["template"]], {"p": people[i], "city": places[i], "q": people[n + i],
                                                            "city2": places[n + i]})
                for i, item in enumerate(held_out)]
    return Task("birth sentences → JSON", BIRTH_INSTRUCTION, BIRTH_SCHEMA, train, held_out)


def _pattern(template: str) -> re.Pattern:
    """``template`` as a regex capturing the answer's person and city (``p``, ``city``) and the distractors' (``q``, ``city2``)."""
    wanted = {"p", "city", "q", "city2"}
    return re.compile(re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m[1]}>.+?)" if m[1] in wanted else ".+?",
                             re.escape(template)))


def _renamed(item: dict, pattern: re.Pattern, names: dict[str, str]) -> dict:
    """``item`` with its answer's and its distractors' person and city replaced by ``names`` (text and answer key)."""
    e = item["expected"]
    match = pattern.fullmatch(item["text"])
    if match is None or match["p"] != e["person"] or match["city"] != e["city"]:  # a template the regex misreads
        raise InputError(f"Could not locate the names in {item['text']!r} (template {item['template']!r}).")
    text = item["text"]
    spans = sorted(((match.span(g), names[g]) for g in names if g in match.groupdict()), reverse=True)
    for (start, end), name in spans:  # from the end, so earlier spans stay valid
        text = text[:start] + name + text[end:]
    return {**item, "text": text, "expected": {**e, "person": names["p"], "city": names["city"]}}


def overlap(task: Task) -> dict[str, int]:
    """How many held-out sentences have an answer that occurs anywhere in a training sentence, per field.

    ``person`` counts full names; ``first``/``last`` name parts; ``city``; ``year``; ``distractor``: held-out
    sentences with any word (a distracting person's name part included) that is part of a training answer's person or
    city. All zero for :func:`birth_task`'s split: the check the guide's sentence about new people, places and years
    is rendered from.
    """
    text = "\n".join(item["text"] for item in task.train)
    words = set(re.findall(r"\w+", text))
    answer_words = {w for item in task.train for k in ("person", "city") for w in re.findall(r"\w+", item["expected"][k])}
    counts = {"person": 0, "first": 0, "last": 0, "city": 0, "year": 0, "distractor": 0}
    for item in task.held_out:
        counts["distractor"] += bool(answer_words & set(re.findall(r"\w+", item["text"])))
        e = item["expected"]
        first, _, last = e["person"].partition(" ")
        counts["person"] += e["person"] in text
        counts["first"] += first in words
        counts["last"] += last in words
        counts["city"] += re.search(rf"\b{re.escape(e['city'])}\b", text) is not None
        counts["year"] += str(e["year"]) in words
    return counts


def tokenise(tokenizer, task: Task, items: Sequence[dict], *, max_len: int = 256) -> list[dict[str, list[int]]]:
    """Chat-templated prompt + the JSON answer + end of turn; labels are -100 on the prompt (loss on the answer only)."""
    out = []
    end = tokenizer.eos_token or ""
    for item in items:
        prompt = tokenizer.apply_chat_template(task.messages(item), add_generation_prompt=True, tokenize=False)
        answer = json.dumps(item["expected"]) + end
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"]
        if len(p) + len(a) > max_len:
            raise InputError(f"An example has {len(p) + len(a)} tokens > max_len {max_len}: raise max_len.")
        out.append({"input_ids": p + a, "labels": [-100] * len(p) + a})
    return out
