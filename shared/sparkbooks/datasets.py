"""Loaders for the registered data sets: fetched through :mod:`sparkbooks.sources`, returned as DataFrames."""

from __future__ import annotations

import zipfile

from .sources import fetch

__all__ = ["health_tweets"]


def health_tweets(*, n: int | None = None, seed: int = 0):
    """Health-news tweets: columns ``source`` (one of 16 accounts), ``tweet_id``, ``text``.

    ``n`` draws a reproducible random sample; ``None`` returns all 63,326 tweets.
    """
    import pandas as pd  # noqa: PLC0415

    with zipfile.ZipFile(fetch("health-tweets")) as archive, archive.open("healthtweets.csv") as fh:
        raw = pd.read_csv(fh, dtype=str, keep_default_na=False)
    source, _, tweet_id = raw["source_id"].str.rpartition("-").T.values
    tweets = pd.DataFrame({"source": source, "tweet_id": tweet_id, "text": raw["text"].str.strip()})
    tweets = tweets[tweets["text"] != ""].reset_index(drop=True)
    if n is not None and n < len(tweets):
        tweets = tweets.sample(n=n, random_state=seed).reset_index(drop=True)
    return tweets
