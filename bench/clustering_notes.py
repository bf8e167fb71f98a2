"""Varied, realistic-looking failure notes for the clustering benchmark: 14 failure themes, each written many ways,
with filler, entity names, typos and a few German/French/Spanish notes, so groups are fuzzy like real open coding.
"""

from __future__ import annotations

import random

THEMES: dict[str, list[str]] = {
    "hallucinated statistic": [
        "Invents a statistic about {thing}",
        "Made-up number: claims {n}% of {thing} without any source",
        "the {n} figure for {thing} is fabricated",
        "Hallucinated stat ({n} {thing}), nothing in the context supports it",
        "quotes a percentage ({n}%) that does not exist anywhere",
    ],
    "wrong date": [
        "Gives the wrong date for {event}",
        "date is off: says {year} but {event} happened in {year2}",
        "Wrong year for {event}",
        "Mixes up the dates of {event}",
        "incorrect date, {event} was not in {year}",
    ],
    "ignores refund policy": [
        "Promises a refund outside the {n}-day refund policy",
        "Ignores the refund policy and offers money back for {thing}",
        "refund offered although policy says no refunds on {thing}",
        "Contradicts our refund policy ({n} days)",
    ],
    "tool call wrong arguments": [
        "Calls {tool} with the wrong arguments",
        "tool call to {tool} passes order id as a string instead of int",
        "Wrong parameters in the {tool} call",
        "{tool} called with missing required argument",
        "bad tool arguments: {tool} got the customer name instead of the id",
    ],
    "does not cite sources": [
        "Does not cite any source for {thing}",
        "no citation even though the retrieved passage covers {thing}",
        "Answer lacks citations",
        "missing source references for the claims about {thing}",
    ],
    "too verbose": [
        "Far too long, {n} paragraphs for a yes/no question",
        "verbose answer, buries the point about {thing}",
        "Rambles; the user asked for one line",
        "Overly long response with repeated caveats",
    ],
    "wrong language": [
        "Answers in English although the user wrote in {lang}",
        "replied in the wrong language ({lang} expected)",
        "Switches language mid answer from {lang} to English",
    ],
    "unsafe medical advice": [
        "Gives dosage advice for {drug} without telling to see a doctor",
        "unsafe medical advice about {drug}",
        "Recommends doubling the {drug} dose, dangerous",
    ],
    "leaks system prompt": [
        "Leaks the system prompt when asked about {thing}",
        "reveals internal instructions verbatim",
        "System prompt disclosed to the user",
    ],
    "math error": [
        "Arithmetic mistake: {n} times {n2} is not {n3}",
        "math error in the total ({n3} should be {n})",
        "Miscalculates the sum of the order items",
        "wrong calculation of the discount, off by {n}%",
    ],
    "refuses valid request": [
        "Refuses a harmless request about {thing}",
        "unnecessary refusal, the question about {thing} is fine",
        "Over-refusal: says it cannot help with {thing}",
    ],
    "repeats itself": [
        "Repeats the same sentence {n} times",
        "repetitive output, loops on the greeting",
        "The answer repeats itself",
    ],
    "formatting broken": [
        "Broken markdown table in the answer",
        "JSON output is invalid, missing closing brace",
        "formatting broken: bullet list renders as one line",
    ],
    "foreign": [
        "Die Antwort erfindet eine Statistik über {thing}",
        "Falsches Datum für {event}",
        "La réponse invente une statistique sur {thing}",
        "Mauvaise date pour {event}",
        "La respuesta inventa una estadística sobre {thing}",
        "Fecha incorrecta para {event}",
    ],
}
THINGS = ["nuclear plants", "churn", "delivery times", "EV sales", "shoes", "gift cards", "the premium plan",
          "vaccines", "solar panels", "mortgages", "student loans", "the loyalty program"]  # fmt: skip
EVENTS = ["the moon landing", "the product launch", "the merger", "the treaty of Rome", "the last price change",
          "the outage", "the election"]  # fmt: skip
TOOLS = ["lookup_order", "search", "create_ticket", "refund_payment", "get_weather"]
LANGS = ["German", "French", "Spanish", "Japanese", "Dutch"]
DRUGS = ["ibuprofen", "paracetamol", "warfarin", "insulin"]
FILLERS = ["", "", "", "Also ", "Again: ", "Hmm, ", "Note: ", "Big issue - ", "minor: "]
SUFFIXES = ["", "", "", ".", " again.", " (see turn 3)", " — customer noticed", "!!"]


def _typo(text: str, rng: random.Random) -> str:
    if len(text) < 10 or rng.random() > 0.15:
        return text
    i = rng.randrange(1, len(text) - 2)
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def generate_notes(count: int, *, seed: int = 7) -> list[tuple[str, str]]:
    """`count` (theme, text) pairs; themes follow a Zipf-like frequency, as real failure modes do."""
    rng = random.Random(seed)
    themes = list(THEMES)
    weights = [1 / (rank + 1) for rank in range(len(themes))]
    notes = []
    for _ in range(count):
        theme = rng.choices(themes, weights)[0]
        template = rng.choice(THEMES[theme])
        year = rng.randrange(1950, 2026)
        text = template.format(
            thing=rng.choice(THINGS), event=rng.choice(EVENTS), tool=rng.choice(TOOLS), lang=rng.choice(LANGS),
            drug=rng.choice(DRUGS), n=rng.randrange(2, 95), n2=rng.randrange(2, 12), n3=rng.randrange(10, 900),
            year=year, year2=year + rng.randrange(1, 9),
        )  # fmt: skip
        notes.append((theme, _typo(rng.choice(FILLERS) + text + rng.choice(SUFFIXES), rng)))
    return notes
