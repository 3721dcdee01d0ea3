"""Birth sentences with an answer key: the test set for text → JSON extraction.

Invented people (so a model cannot answer from memory) born in real cities, in sentences that
half the time also name a second person, a second year and a second city — a mentor, a move,
a marriage — so that picking the first name or year in the sentence is often wrong.
"""

from __future__ import annotations

import random

__all__ = ["BIRTH_EXAMPLE", "BIRTH_INSTRUCTION", "BIRTH_SCHEMA", "TEMPLATES", "birth_sentences"]

BIRTH_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["person", "city", "country", "year"],
                "properties": {"person": {"type": "string"}, "city": {"type": "string"},
                               "country": {"type": "string"}, "year": {"type": "integer"}}}

BIRTH_INSTRUCTION = ("Extract the person whose birth the sentence reports: their full name, the city and country of birth "
                     "and the birth year. Answer with JSON only, with the keys person, city, country and year (an integer).")

#: One worked example: a distractor sentence on the pattern of "born first", so its wording recurs, but none of its
#: values can occur in a test sentence — names and places are not in the lists below, and its years (1794, 1819) lie
#: before every test year (birth 1820–1989, later events 18–44 years on), so copying it is always wrong.
BIRTH_EXAMPLE = ("Born in 1794 in Leeds, England, Ana Ruiz later met Tom Berg in Oslo in 1819.",
                 {"person": "Ana Ruiz", "city": "Leeds", "country": "England", "year": 1794})

_FIRST = ["Amara", "Bruno", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hiroshi", "Ines", "Jonas", "Keiko", "Luca",
          "Maren", "Nikolai", "Olga", "Pedro", "Quinn", "Rosa", "Soren", "Tamar", "Ugo", "Vera", "Wiktor", "Yara", "Zofia"]
_LAST = ["Abenov", "Brandt", "Castellano", "Dufresne", "Eriksen", "Fonseca", "Grimaldi", "Halvorsen", "Ivanova", "Jansen",
         "Kowalczyk", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrescu", "Quiroga", "Rasmussen", "Santoro", "Takeda",
         "Urquhart", "Vasquez", "Wojcik", "Yilmaz", "Zeller"]
_PLACES = [("Lyon", "France"), ("Porto", "Portugal"), ("Kraków", "Poland"), ("Bergen", "Norway"), ("Ghent", "Belgium"),
           ("Turin", "Italy"), ("Seville", "Spain"), ("Leipzig", "Germany"), ("Uppsala", "Sweden"), ("Tartu", "Estonia"),
           ("Brno", "Czechia"), ("Cork", "Ireland"), ("Osaka", "Japan"), ("Pune", "India"), ("Lagos", "Nigeria"),
           ("Recife", "Brazil"), ("Mendoza", "Argentina"), ("Quebec City", "Canada"), ("Perth", "Australia"),
           ("Izmir", "Turkey"), ("Aarhus", "Denmark"), ("Graz", "Austria"), ("Tampere", "Finland"), ("Cusco", "Peru")]

# (name, has distractors, template). {p}/{city}/{country}/{year} are the answer; {q}/{city2}/{year2} distract.
TEMPLATES = [
    ("plain", False, "{p} was born in {city}, {country}, in {year}."),
    ("year first", False, "In {year}, {p} was born in {city}, {country}."),
    ("apposition", False, "{p}, {a_job}, was born in {year} in {city}, {country}."),
    ("parenthesis", False, "{p} ({job}; born {city}, {country}, {year}) spent a career abroad."),
    ("moved later", True, "{p} was born in {city}, {country}, in {year} and moved to {city2} in {year2} to work with {q}."),
    ("born first", True, "Born in {year} in {city}, {country}, {p} met {q} in {city2} in {year2}."),
    ("mentor first", True, "{q} opened a workshop in {city2} in {year2}; its best-known {job}, {p}, was born in {city}, {country}, in {year}."),
    ("married", True, "In {year2}, {q} married {p}, who had been born in {city}, {country}, in {year}."),
]
_JOBS = ["chemist", "architect", "composer", "engineer", "botanist", "cartographer", "novelist", "surgeon", "painter"]


def birth_sentences(n: int = 100, *, seed: int = 0) -> list[dict]:
    """``n`` sentences, cycling through :data:`TEMPLATES`, each with ``expected`` answers and its ``template``.

    Every item is ``{"text", "expected": {person, city, country, year}, "template", "distractors"}``;
    the distracting person, city and year always differ from the answer.
    """
    rng = random.Random(seed)
    items = []
    for i in range(n):
        name, distractors, template = TEMPLATES[i % len(TEMPLATES)]
        p, q = (f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" for _ in range(2))
        while q.split()[1] == p.split()[1]:
            q = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        (city, country), (city2, _) = rng.sample(_PLACES, 2)
        year = rng.randrange(1820, 1990)
        year2 = year + rng.randrange(18, 45)
        job = rng.choice(_JOBS)
        text = template.format(p=p, q=q, city=city, country=country, year=year, city2=city2, year2=year2, job=job,
                               a_job=("an " if job[0] in "aeiou" else "a ") + job)
        items.append({"text": text, "expected": {"person": p, "city": city, "country": country, "year": year},
                      "template": name, "distractors": distractors})
    return items
