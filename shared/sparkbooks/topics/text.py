"""Text preparation: what the topic model and its scores read from each document."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

__all__ = ["clean_text", "vectorizer"]

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
