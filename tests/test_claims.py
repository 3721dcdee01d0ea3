"""Claims (issue 41): verdicts computed from evidence, and one suite of checks run on every playbook.

The suite follows scikit-learn's ``parametrize_with_checks``: :func:`sparkbooks.claims.problems` is one
list of checks (declared claims recorded with their baselines, verdicts that their evidence gives,
no typed number beside a result's name that the run recorded differently, no typed verdict, no
``holds`` shown for a claim that was not decided so, no bare ``assert``), applied to each playbook's
executed run. The unit tests below show each check failing on a tiny synthetic notebook.
"""

from __future__ import annotations

import json
import pickle

import nbformat
import pytest

import sparkbooks as sb
from sparkbooks import claims
from sparkbooks.claims import DOES_NOT_HOLD, HOLDS, NOT_DECIDED, decide, evaluate
from sparkbooks.exceptions import InputError, MetadataError

PLAYBOOKS = [pb.slug for pb in sb.catalog.discover()]


# ---------------------------------------------------------------- verdicts


@pytest.mark.parametrize(("compare", "kwargs", "verdict"), [
    ("smaller", {"test": "exact"}, HOLDS),                                            # 1 < 2
    ("greater", {"test": "exact"}, DOES_NOT_HOLD),
    ("smaller", {"test": "exact", "tolerance": 1.5}, DOES_NOT_HOLD),                  # not by more than 1.5
    ("within", {"test": "exact", "tolerance": 1.0}, HOLDS),                           # |1 − 2| <= 1
    ("within", {"test": "exact", "tolerance": 0.4, "relative": True}, DOES_NOT_HOLD),  # 0.4 · 2 = 0.8 < 1
    ("smaller", {"test": "paired-bootstrap", "interval": (-1.5, -0.2)}, HOLDS),
    ("smaller", {"test": "paired-bootstrap", "interval": (-1.5, 0.2)}, NOT_DECIDED),  # straddles 0
    ("greater", {"test": "seed-bootstrap", "interval": (-1.5, -0.2)}, DOES_NOT_HOLD),
    ("within", {"test": "block-bootstrap", "interval": (-0.5, 0.5), "tolerance": 1}, HOLDS),
    ("within", {"test": "block-bootstrap", "interval": (-2, 0.5), "tolerance": 1}, NOT_DECIDED),
    ("within", {"test": "block-bootstrap", "interval": (-3, -1.5), "tolerance": 1}, DOES_NOT_HOLD),
    ("smaller", {"test": "wilson", "interval": (0.5, 1.6)}, HOLDS),                   # all of it below 2
    ("smaller", {"test": "wilson", "interval": (0.5, 2.6)}, NOT_DECIDED),
    ("smaller", {"test": "mcnemar", "p": 0.01}, HOLDS),
    ("greater", {"test": "mcnemar", "p": 0.01}, DOES_NOT_HOLD),
    ("smaller", {"test": "mcnemar", "p": 0.2}, NOT_DECIDED),                          # never 'holds' undecided
    ("smaller", {"test": "hac", "p": 0.05}, NOT_DECIDED),                             # p must be below alpha
])
def test_the_evidence_decides_the_verdict(compare, kwargs, verdict):
    assert decide(1.0, 2.0, compare=compare, **kwargs) == verdict


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"compare": "bigger", "test": "exact"},
     "The 'compare' parameter of claim() must be a str among {'greater', 'smaller', 'within'}. Got 'bigger' instead."),
    ({"compare": "greater", "test": "t-test"}, "The 'test' parameter of claim() must be a str among {'exact'"),
    ({"compare": "greater", "test": "mcnemar"}, "test='mcnemar' decides from a p-value: pass p="),
    ({"compare": "greater", "test": "paired-bootstrap", "p": 0.01}, "decides from an interval: pass interval="),
    ({"compare": "greater", "test": "exact", "p": 0.01}, "test='exact' takes no evidence"),
    ({"compare": "within", "test": "exact"}, "compare='within' needs a tolerance > 0"),
    ({"compare": "within", "test": "mcnemar", "p": 0.01, "tolerance": 1}, "use an interval test"),
    ({"compare": "greater", "test": "wilson", "interval": (2, 1)}, "low <= high"),
    ({"compare": "greater", "test": "exact", "tolerance": -1}, "The 'tolerance' parameter of claim() must be a number >= 0"),
    ({"compare": "greater", "test": "mcnemar", "p": 1.5}, "The 'p' parameter of claim() must be a float in [0, 1]"),
])
def test_arguments_that_cannot_decide_are_refused_with_the_fix(kwargs, message):
    with pytest.raises(InputError) as err:
        decide(1.0, 2.0, **kwargs)
    assert message in str(err.value)


def test_a_claim_says_its_verdict_first_with_both_figures_and_the_test():
    c = evaluate("card_gap", value=0.052, baseline=0.02, metric="gap", baseline_name="target", text="t",
                 compare="within", tolerance=0.01, test="exact",
                 sentences={HOLDS: "the gap stays near {baseline_value:.0%}",
                            DOES_NOT_HOLD: "the gap is {value:.1%}, not near {baseline_value:.0%}"})
    assert c.verdict == DOES_NOT_HOLD and not c.holds
    assert c.sentence.startswith("**does not hold** — the gap is 5.2%, not near 2% (`gap` = 0.052 vs `target` = 0.02")
    assert 'data-verdict="does not hold"' in c._repr_html_() and "<code>gap</code>" in c._repr_html_()
    assert pickle.loads(pickle.dumps(c)) == c and json.loads(json.dumps(c.to_dict()))["verdict"] == DOES_NOT_HOLD
    with pytest.raises(InputError, match="sentence cannot be filled"):
        evaluate("x", value=1, baseline=2, metric="a", baseline_name="b", text="t", test="exact",
                 sentences={DOES_NOT_HOLD: "{nope}"})


def test_an_interval_decided_at_a_family_level_says_its_level():
    # review 47: six comparisons from one ablation were each decided at 95 %, with no multiplicity correction; an
    # interval at the Bonferroni level must say which level it is, or a reader takes it for a 95 % one
    alpha = 0.05 / 6
    c = evaluate("x", value=2.0, baseline=1.9, metric="a", baseline_name="b", text="t", compare="greater",
                 test="seed-bootstrap", interval=(0.01, 0.2), alpha=alpha)
    assert c.verdict == HOLDS and "at 99.17% [0.01, 0.2]" in c.sentence
    plain = evaluate("x", value=2.0, baseline=1.9, metric="a", baseline_name="b", text="t", compare="greater",
                     test="seed-bootstrap", interval=(0.01, 0.2))
    assert "interval of the difference [0.01, 0.2]" in plain.sentence


def test_a_seed_bootstrap_refuses_a_level_it_cannot_reach_and_the_t_interval_reaches_it():
    # review 47: at 1 − 0.05/6 a six-seed expanded bootstrap's tail (≈ 1e-7) is rarer than any resample, so its
    # interval was the seeds' range: five seeds at +0.01 and one at +10 "held" (a paired t gives p = 0.36)
    from sparkbooks.evidence import seed_bootstrap, seed_t_interval

    skewed = [0.01] * 5 + [10.0]
    with pytest.raises(InputError, match="cannot reach a 99.17% interval"):
        seed_bootstrap(skewed, level=1 - 0.05 / 6)
    t = seed_t_interval(skewed, level=1 - 0.05 / 6)
    assert t.low < 0 < t.high and t.n == 6
    assert decide(1.0, 0.0, compare="greater", test="seed-t", interval=t) == NOT_DECIDED
    assert seed_bootstrap(skewed).n == 6  # 95 % stays reachable with six seeds
    with pytest.raises(InputError, match="not one resample"):  # round 2: a tail of 0.2 of 2,000 draws
        seed_bootstrap(skewed, level=0.98)
    with pytest.raises(InputError, match="at least 6 seeds"):
        seed_t_interval([0.1] * 5)


def test_claim_compares_recorded_results_only(monkeypatch):
    session = _session(monkeypatch, {"ours": 1.0, "plain": 3.0, "path": "cpu"})
    c = claims.claim("faster", "ours", baseline="plain", compare="smaller", test="exact", text="ours is faster")
    assert c.verdict == HOLDS and session.claims["faster"]["baseline_value"] == 3.0
    with pytest.raises(InputError, match=r"the baseline 'typed' was not recorded in this run; record it first .*Recorded: ours, plain"):
        claims.claim("x", "ours", baseline="typed", test="exact", text="t")
    with pytest.raises(InputError, match="a claim compares numbers"):
        claims.claim("x", "ours", baseline="path", test="exact", text="t")
    assert "| ours is faster | `ours` = 1 | `plain` = 3 | exact figures, no sampling test | **holds** |" in claims.show()


def _session(monkeypatch, values):
    from sparkbooks.session import Result, Session

    session = Session.__new__(Session)
    session.results = {k: Result(k, v) for k, v in values.items()}
    session.results_path = None
    session.claims = {}
    monkeypatch.setattr(sb.session, "_current", session)
    return session


# ---------------------------------------------------------------- declarations


def test_declarations_are_checked_with_the_notebook_named():
    ok = [{"name": "c", "metric": "a", "baseline": "b", "compare": "smaller", "test": "exact"}]
    assert claims.validate_declarations(ok, where="x.ipynb") == ok
    for bad, message in [
        ({"name": "c", "metric": "a", "compare": "smaller", "test": "exact"}, "lacks baseline"),
        ({**ok[0], "compare": "less"}, "compare must be one of greater, smaller, within"),
        ({**ok[0], "test": "t"}, "test must be one of exact"),
        ({**ok[0], "baseline": "a"}, "a claim needs a baseline"),
        ({**ok[0], "colour": 1}, "unknown keys colour"),
        ({**ok[0], "tolerance": "1%"}, "tolerance must be a number"),
    ]:
        with pytest.raises(MetadataError, match=f"x.ipynb: `playbook.claims\\[0\\]`.*{message}"):
            claims.validate_declarations([bad], where="x.ipynb")
    with pytest.raises(MetadataError, match="declared twice"):
        claims.validate_declarations(ok * 2, where="x.ipynb")


@pytest.mark.parametrize("slug", PLAYBOOKS)
def test_every_playbook_declares_a_claim_with_a_baseline(slug):
    declared = sb.catalog.get(slug).claims
    assert declared, f"{slug}: declare at least one claim in `playbook.claims` (issue 41)"
    assert all(c["baseline"] != c["metric"] for c in declared)


@pytest.mark.parametrize("slug", PLAYBOOKS)
def test_no_notebook_asserts_without_a_message(slug):
    nb = json.loads(sb.catalog.get(slug).path.read_text())
    assert claims.assert_problems(nb) == []


# ---------------------------------------------------------------- the suite, on a synthetic notebook


def _run(markdown: str, *, verdict_shown: str | None = None, code: str = "x = 1"):
    """A tiny executed notebook and its results.json: one claim that holds, ``gap`` = 0.052."""
    c = evaluate("gap_small", value=0.052, baseline=0.1, metric="gap", baseline_name="gap_start", text="the gap shrinks",
                 compare="smaller", test="exact")
    cell = nbformat.v4.new_code_cell(code)
    shown = c.sentence if verdict_shown is None else c.sentence.replace("**holds**", f"**{verdict_shown}**", 1)
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": shown, "text/html": c._repr_html_()})]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(markdown), cell])
    results = {"results": [{"name": "gap", "value": 0.052}, {"name": "gap_start", "value": 0.1}],
               "claims": [c.to_dict()]}
    declared = [{"name": "gap_small", "metric": "gap", "baseline": "gap_start", "compare": "smaller", "test": "exact"}]
    return json.loads(nbformat.writes(nb)), results, declared


def test_the_suite_passes_a_notebook_whose_prose_agrees_with_its_run():
    nb, results, declared = _run("The certified gap `gap` came out at 5.2 % here (see the claim below).")
    assert claims.problems(nb, results, declared=declared) == []


def test_the_suite_fails_on_a_wrong_typed_number():
    nb, results, declared = _run("Where the optimum holds 25 stocks the gap `gap` stays near 2 % of the bound.")
    (problem,) = claims.problems(nb, results, declared=declared)
    assert "`gap` '2 %' typed, but the run recorded 0.052" in problem


def test_the_suite_fails_on_a_typed_verdict_and_a_claim_shown_holding_that_does_not():
    nb, results, declared = _run("HDBSCAN finds the sub-topics: the claim **holds**.")
    assert any("typed verdict '**holds**'" in p for p in claims.problems(nb, results, declared=declared))
    nb, results, declared = _run("Prose.")
    results["claims"][0]["verdict"] = NOT_DECIDED  # the run said 'not decided', the output says 'holds'
    found = claims.problems(nb, results, declared=declared)
    assert any("recorded verdict 'not decided', but its evidence gives 'holds'" in p for p in found)
    assert any("shows claim 'gap_small' as 'holds', recorded 'not decided'" in p for p in found)


def test_the_suite_fails_on_a_missing_claim_a_changed_figure_and_a_bare_assert():
    nb, results, declared = _run("Prose.", code="assert x == 1")
    results["results"][0]["value"] = 0.06
    declared.append({"name": "beats_kmeans", "metric": "ami", "baseline": "ami_kmeans", "compare": "greater", "test": "exact"})
    found = claims.problems(nb, results, declared=declared)
    assert any("'beats_kmeans' is declared but the run did not record it" in p for p in found)
    assert any("value 0.052 differs from the recorded gap = 0.06" in p for p in found)
    assert any("`assert x == 1` has no message" in p for p in found)


# ---------------------------------------------------------------- every executed playbook


@pytest.mark.slow
@pytest.mark.parametrize("slug", PLAYBOOKS)
def test_executed_playbook_keeps_its_claims(playbook_runs, slug):
    check_run(playbook_runs(slug), slug)  # executes only this playbook (once per session), so it fails alone


def check_run(run_dir, slug: str) -> None:
    """The suite on one run folder (``runs/<slug>``): usable on any runs directory, e.g. a fresh ``sparkbooks run``."""
    results = json.loads((run_dir / "results.json").read_text())
    nb = json.loads((run_dir / f"{slug}.ipynb").read_text())
    assert claims.problems(nb, results, declared=sb.catalog.get(slug).claims) == []
