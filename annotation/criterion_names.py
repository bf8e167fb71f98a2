"""Criterion names that name a vague quality instead of a check.

A criterion called "helpfulness", "quality", "coherence" or "relevance" (or a close variant: "helpful",
"answer_quality", "isRelevant", "incoherent") invites labels that drift with the expert's mood, and a judge has
nothing concrete to shadow. The method asks for a binary question with a concrete pass/fail definition
("fails when the reply does not answer the question asked"); the pages that show such a name say so. A name
counts as generic when, once words that do not change its meaning ("overall", "response", "score", …) are set
aside, nothing but such qualities is left. No Django here: it is a rule about a string.
"""

from __future__ import annotations

import re

# Each vague quality and the spellings of it that count (adjective, noun, negation, common misspellings).
_QUALITIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("helpfulness", re.compile(r"(un)?help(ful{1,2}|ing)?(ness)?")),
    ("quality", re.compile(r"qualit(y|ies)")),
    ("coherence", re.compile(r"(in)?coheren(t|ce|cy)(ness)?")),
    ("relevance", re.compile(r"(ir)?relevan(t|ce|cy)(ness)?")),
)

# Words that leave a name as vague as it was: "overall answer quality" asks nothing more than "quality".
_FILLER = frozenset(
    {
        "a",
        "an",
        "and",
        "answer",
        "answers",
        "bad",
        "check",
        "criterion",
        "general",
        "generic",
        "good",
        "great",
        "high",
        "is",
        "level",
        "llm",
        "low",
        "message",
        "metric",
        "of",
        "output",
        "overall",
        "rating",
        "replies",
        "reply",
        "response",
        "responses",
        "score",
        "text",
        "the",
        "v",
    }
)

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_WORD = re.compile(r"[a-z]+")


def _words(name: str) -> list[str]:
    return _WORD.findall(_CAMEL.sub(" ", name).lower())


def generic_quality(name: str) -> str | None:
    """The vague quality `name` amounts to ("helpfulness", "quality", "coherence" or "relevance"), or None when the
    name says something more concrete."""
    found: str | None = None
    for word in _words(name):
        if word in _FILLER:
            continue
        quality = next((q for q, pattern in _QUALITIES if pattern.fullmatch(word)), None)
        if quality is None:
            return None
        found = found or quality
    return found
