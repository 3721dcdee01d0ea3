"""Topic names from a language model, given each topic's keywords and example documents."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import TopicModel

__all__ = ["name_topics"]

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
