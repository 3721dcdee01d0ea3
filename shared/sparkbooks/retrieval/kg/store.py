"""The graph on disk: LadybugDB (embedded, Cypher), written idempotently, reopened, and queried read-only.

LadybugDB is the maintained fork of Kùzu: an embedded property-graph database (one file, no server)
with Cypher, wheels for Linux x86-64 and aarch64. Entities are ``Entity`` nodes keyed by name;
each fact is a ``Fact`` relationship carrying its relation, evidence and chunk. Writes use
``MERGE``, so extracting the same text twice leaves the counts as they were. Cypher that a model
writes goes through :func:`check_read_only` first: one statement, reading clauses only — LadybugDB
runs every statement of a ``;``-separated string, so ``MATCH … RETURN n; MATCH (n) DETACH DELETE n``
would otherwise empty the graph.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from ...exceptions import InputError, UnsafeQueryError

__all__ = ["Counts", "GraphStore", "UnsafeQueryError", "check_read_only"]

_WRITES = ("CREATE", "MERGE", "DELETE", "DETACH", "SET", "REMOVE", "DROP", "ALTER", "CALL", "COPY", "LOAD",
           "INSTALL", "ATTACH", "DETACH", "EXPORT", "IMPORT", "BEGIN", "COMMIT", "ROLLBACK", "CHECKPOINT", "USE")
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`")


class Counts(NamedTuple):
    """How many entities (nodes) and facts (relationships) a store holds."""

    entities: int
    facts: int


def check_read_only(query: str) -> str:
    """The query, stripped, if it is one statement of reading clauses; else :class:`UnsafeQueryError` naming why."""
    # Comments are not stripped: a ';' or a write hidden behind '//' is refused all the same.
    code = _STRINGS.sub("''", query).strip().rstrip(";").strip()
    if not code:
        raise UnsafeQueryError("empty query")
    if ";" in code:
        raise UnsafeQueryError("more than one statement (';'): only one read-only query runs")
    words = set(re.findall(r"[A-Za-z_]+", code.upper()))
    found = sorted(words & set(_WRITES))
    if found:
        raise UnsafeQueryError(f"not read-only: {', '.join(found)} — only MATCH / OPTIONAL MATCH / WITH / UNWIND / "
                               "WHERE / RETURN queries run")
    if not re.match(r"(OPTIONAL\s+MATCH|MATCH|WITH|UNWIND|RETURN)\b", code, re.I):
        raise UnsafeQueryError(f"a query must start with MATCH, WITH, UNWIND or RETURN, not {code.split()[0]!r}")
    return query.strip().rstrip(";").strip()  # the query itself: `code` had its strings blanked for the check


class GraphStore:
    """Entities and facts in a LadybugDB file at ``path`` (created with its schema when new).

    ``read_only=True`` opens an existing file through LadybugDB's read-only mode — the database itself then refuses
    every write, whatever passes :func:`check_read_only`: the way to answer questions from a graph.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        import ladybug  # noqa: PLC0415

        self.path = Path(path).expanduser()
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise InputError(f"cannot open {self.path} read-only: it does not exist — write the graph first "
                             "(GraphStore(path).add(...)), then reopen it with read_only=True")
        parent = self.path.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            why = ("is not writable" if parent.is_dir() else "is a file, not a folder" if parent.exists()
                   else "does not exist")
            raise InputError(f"cannot write the graph database at {self.path}: {parent} {why} — pass a writable folder")
        try:
            self._db = ladybug.Database(str(self.path), read_only=read_only)
        except RuntimeError as exc:
            raise InputError(f"cannot open the graph database {self.path}: {exc}. Another process may hold it "
                             "(a kernel that opened it keeps it until it exits), or the file is not a LadybugDB database.") from None
        self._con = ladybug.Connection(self._db)
        self._lock = threading.Lock()  # one query at a time on this connection, from any thread
        if read_only:
            return
        self._con.execute("CREATE NODE TABLE IF NOT EXISTS Entity(name STRING PRIMARY KEY, kind STRING)")
        self._con.execute("CREATE REL TABLE IF NOT EXISTS Fact(FROM Entity TO Entity, relation STRING, "
                          "evidence STRING, chunk STRING)")

    def _execute(self, query: str, parameters: Mapping[str, object] | None = None):
        """Run one query and read its whole result as a DataFrame, under the lock."""
        with self._lock:
            return self._con.execute(query, dict(parameters or {})).get_as_df()

    def _writable(self) -> None:
        if self.read_only:
            raise InputError(f"{self.path} was opened read-only: open it with GraphStore(path) to write")

    def close(self) -> None:
        self._con.close()
        self._db.close()

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, facts: Iterable[tuple[str, str, str, str, str]], kinds: Mapping[str, str] | None = None) -> int:
        """MERGE (subject, relation, object, evidence, chunk) facts; a fact already there is left as it is."""
        self._writable()
        kinds = kinds or {}
        n = 0
        for s, r, o, evidence, chunk in facts:
            self._execute("MERGE (a:Entity {name: $s}) ON CREATE SET a.kind = $ks "
                          "MERGE (b:Entity {name: $o}) ON CREATE SET b.kind = $ko "
                          "MERGE (a)-[f:Fact {relation: $r}]->(b) ON CREATE SET f.evidence = $e, f.chunk = $c",
                          {"s": s, "o": o, "r": r, "e": evidence, "c": chunk,
                           "ks": kinds.get(s, ""), "ko": kinds.get(o, "")})
            n += 1
        return n

    def bulk_load(self, facts, kinds: Mapping[str, str] | None = None) -> Counts:
        """Load a facts DataFrame (subject, relation, object[, evidence, chunk]) into an *empty* store with ``COPY``.

        LadybugDB's bulk path — columnar, no per-row MERGE — for graphs of millions of edges; the
        facts must be unique (``add`` merges duplicates, ``COPY`` would store them twice).
        """
        import pandas as pd  # noqa: PLC0415

        self._writable()
        if self.counts() != (0, 0):
            raise InputError(f"bulk_load needs an empty database and {self.path} holds {self.counts()} "
                             "(entities, facts); use add() to merge into it")
        kinds = kinds or {}
        names = pd.unique(pd.concat([facts["subject"], facts["object"]], ignore_index=True))
        entities = pd.DataFrame({"name": names, "kind": [kinds.get(n, "") for n in names]})
        edges = pd.DataFrame({"from": facts["subject"], "to": facts["object"], "relation": facts["relation"],
                              "evidence": facts["evidence"] if "evidence" in facts else "",
                              "chunk": facts["chunk"] if "chunk" in facts else ""})
        with self._lock:
            self._con.execute("COPY Entity FROM entities")
            self._con.execute("COPY Fact FROM edges")
        return self.counts()

    def counts(self) -> Counts:
        nodes = self._execute("MATCH (n:Entity) RETURN count(n)").iloc[0, 0]
        edges = self._execute("MATCH ()-[f:Fact]->() RETURN count(f)").iloc[0, 0]
        return Counts(int(nodes), int(edges))

    def facts(self):
        """Every fact as a DataFrame (subject, relation, object, evidence, chunk)."""
        return self._execute("MATCH (a:Entity)-[f:Fact]->(b:Entity) RETURN a.name AS subject, f.relation AS "
                             "relation, b.name AS object, f.evidence AS evidence, f.chunk AS chunk")

    def names(self) -> list[str]:
        return list(self._execute("MATCH (n:Entity) RETURN n.name AS name")["name"])

    def neighbourhood(self, names: Iterable[str], *, hops: int = 2, limit: int = 30) -> list[tuple[int, str, str, str]]:
        """Facts within ``hops`` edges of the named entities, nearest first: (hop, subject, relation, object).

        A breadth-first walk, one query per hop over the frontier's edges (names are query parameters): a fact's hop
        is one more than the nearer of its two ends — what ``*1..hops`` paths give, without reading every path
        (through a hub, millions of walks share a few thousand facts).
        """
        seen: dict[tuple[str, str, str], int] = {}
        visited = set(names)
        frontier = sorted(visited)
        for depth in range(1, int(hops) + 1):
            if not frontier:
                break
            rows = self._execute("MATCH (a:Entity)-[f:Fact]->(b:Entity) WHERE a.name IN $n OR b.name IN $n "
                                 "RETURN a.name AS s, f.relation AS r, b.name AS o", {"n": frontier})
            reached = set()
            for s_, r, o in zip(rows["s"], rows["r"], rows["o"]):
                seen.setdefault((s_, r, o), depth)
                reached.update((s_, o))
            frontier = sorted(reached - visited)
            visited |= reached
        return sorted((d, *k) for k, d in seen.items())[:limit]

    def query(self, cypher: str, parameters: Mapping[str, object] | None = None):
        """Run a read-only query (checked by :func:`check_read_only` first) and return a DataFrame."""
        return self._execute(check_read_only(cypher), parameters)
