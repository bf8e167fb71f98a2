"""Reference judges: the output compared with the trace's known-good answer (`reference`), deterministically.

Config (`mode` picks the comparison):
- `{"mode": "exact", "strip": true}` — the output equals the reference (surrounding whitespace ignored unless
  `strip` is false).
- `{"mode": "normalized", "case": true, "whitespace": true, "punctuation": true, "unicode": true,
  "diacritics": false}` — equal once both are normalised: Unicode NFKC, case folded, punctuation removed, runs of
  whitespace made one space; each step can be turned off, and diacritics folding (é → e) turned on. "normalised"
  is accepted for "normalized".
- `{"mode": "numeric", "abs_tol": 0.0, "rel_tol": 0.0, "match": "last"}` — numbers are read from the text
  (`-1,234.5`, `3e8`, `.5`; thousands commas allowed, a percent sign ignored). `match: "last"` (default): the last
  number in the output must equal the reference's number (a number, or a text holding exactly one). `match:
  "all"`: the output's numbers, in order, must equal the reference's (a list of numbers, or a text), one for one.
  Equal means within `abs_tol` or within `rel_tol` of the reference (math.isclose).
- `{"mode": "json", "strip_code_fence": true}` — the output parsed as JSON equals the reference, key order
  ignored, a number never equal to true/false; a reference that is a string holding JSON is read as that JSON. A
  fenced block (```json … ```) around the output is unwrapped first unless `strip_code_fence` is false.
- `{"mode": "facts", "ignore_case": true}` — the reference is a list of required facts (a string, or a list of
  strings and `{"regex": "…"}` objects) that must all appear in the output; regexes run through core.user_regex
  with its time limit. The reason names every missing fact.

A trace without a reference is skipped ("no reference"), never passed. Texts compared are the output and the
reference as text (a non-string reference as its compact JSON) except in the json and numeric modes.
"""

from __future__ import annotations

import functools
import json
import math
import re
import string
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from core import user_regex
from core.validation import Expected, problems
from judges.providers import ConfigError, Outcome, TraceInput

NO_REFERENCE = "no reference"
MODES = ("exact", "normalized", "numeric", "json", "facts")
# Shown of a text in a reason: enough to recognise it, never a whole document.
SHOWN_CHARS = 80


class _Mode(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    mode: str


class ExactMode(_Mode):
    mode: Literal["exact"]
    strip: bool = True


class NormalizedMode(_Mode):
    mode: Literal["normalized"]
    case: bool = True
    whitespace: bool = True
    punctuation: bool = True
    unicode: bool = True
    diacritics: bool = False


Tolerance = Annotated[float, Expected("a non-negative number"), Field(ge=0, allow_inf_nan=False)]


class NumericMode(_Mode):
    # Not strict: a whole number is a valid tolerance.
    model_config = ConfigDict(extra="forbid", strict=False)

    mode: Literal["numeric"]
    abs_tol: Tolerance = 0.0
    rel_tol: Tolerance = 0.0
    match: Annotated[Literal["last", "all"], Expected("last or all")] = "last"

    @model_validator(mode="before")
    @classmethod
    def _no_booleans(cls, data: Any) -> Any:
        # Lax mode would take true as 1.0 and "0.1" as a number: a config that says that is a mistake.
        if isinstance(data, dict):
            for key in ("abs_tol", "rel_tol"):
                value = data.get(key)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                    raise ValueError(f"{key}: expected a non-negative number, got {json.dumps(value)[:60]}")
        return data


class JsonMode(_Mode):
    mode: Literal["json"]
    strip_code_fence: bool = True


class FactsMode(_Mode):
    mode: Literal["facts"]
    ignore_case: bool = True


MODE_MODELS: dict[str, type[BaseModel]] = {
    "exact": ExactMode,
    "normalized": NormalizedMode,
    "numeric": NumericMode,
    "json": JsonMode,
    "facts": FactsMode,
}
ReferenceConfig = TypeAdapter(
    Annotated[ExactMode | NormalizedMode | NumericMode | JsonMode | FactsMode, Field(discriminator="mode")]
)


def validate_config(config: object) -> dict[str, Any]:
    """The config with defaults filled in. Raises ConfigError naming the key at fault (every one, `; ` between)."""
    if isinstance(config, dict) and config.get("mode") == "normalised":
        config = {**config, "mode": "normalized"}
    try:
        checked = ReferenceConfig.validate_python(config)
    except ValidationError as exc:
        unknown = "{key}: not a setting of the {tag} mode (settings: {keys})"
        messages = problems(exc, MODE_MODELS, root="config", unknown=unknown)
        # The tag is called `mode` here; pydantic's message for a missing or unknown one names the choices.
        raise ConfigError("; ".join(messages)) from None
    return checked.model_dump()


# --- the comparisons (pure functions, tested on their own) --------------------------------------------------------


def as_text(value: Any) -> str:
    """A reference as text: a string as it is, any other JSON value as its compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@functools.cache
def _tables() -> tuple[dict[int, str], dict[int, None]]:
    """str.translate tables, built once per process (~20 ms): punctuation → space (Unicode category P: « », ¿, —;
    and the ASCII symbols string.punctuation adds: $, +, <, =, …), and combining marks → removed. The Basic
    Multilingual Plane only: punctuation beyond it is rare, and a table lookup per character is five times faster
    than a regex class for Unicode punctuation."""
    punctuation = {ord(c): " " for c in string.punctuation}
    combining: dict[int, None] = {}
    for code in range(0x10000):
        category = unicodedata.category(chr(code))
        if category.startswith("P"):
            punctuation[code] = " "
        elif category == "Mn":
            combining[code] = None
    return punctuation, combining


def normalize(
    text: str,
    *,
    case: bool = True,
    whitespace: bool = True,
    punctuation: bool = True,
    unicode: bool = True,
    diacritics: bool = False,
) -> str:
    """The text as the normalized mode compares it."""
    if unicode:
        text = unicodedata.normalize("NFKC", text)
    if diacritics:
        # Decompose, drop the combining marks, recompose: é → e, ø stays (it has no decomposition).
        text = unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).translate(_tables()[1]))
    if case:
        text = text.casefold()
    if punctuation:
        # Unicode punctuation too (« », ¿, —: category P, in the Basic Multilingual Plane), and ASCII symbols.
        text = text.translate(_tables()[0])
    if whitespace:
        text = " ".join(text.split())
    return text


# A number as people write it: sign, thousands commas (1,234,567), decimals, exponent; `.5` too. Not the tail of a
# word or of another number ("gpt4" holds none; "2-3" holds 2 and 3, not -3).
_NUMBER = re.compile(r"(?<![\w.])[-+−]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def numbers_in(text: str) -> list[float]:
    """Every number in the text, in order."""
    found = []
    for match in _NUMBER.finditer(text):
        try:
            found.append(float(match.group().replace(",", "").replace("−", "-")))
        except ValueError:  # a digit float() does not read (a rare Unicode digit form): not a number here
            continue
    return found


def reference_numbers(reference: Any) -> list[float]:
    """The numbers a reference holds: a number, a list of numbers, or the numbers in a text."""
    if isinstance(reference, bool):
        return []
    if isinstance(reference, int | float):
        return [float(reference)]
    if isinstance(reference, list) and all(
        isinstance(item, int | float) and not isinstance(item, bool) for item in reference
    ):
        return [float(item) for item in reference]
    return numbers_in(as_text(reference))


def _close(got: float, want: float, abs_tol: float, rel_tol: float) -> bool:
    return math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)


_FENCE = re.compile(r"\A\s*```[\w-]*[ \t]*\n(.*?)\n?```\s*\Z", re.DOTALL)


def json_difference(got: Any, want: Any, path: str = "$") -> str | None:
    """Where two JSON values first differ (`$.items[2]: expected 3, got 4`), or None when they are equal. Object
    key order never matters; a number never equals true or false (Python's 1 == True does not apply); 1 equals
    1.0."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{path}: expected an object, got {_shown(got)}"
        missing = [key for key in want if key not in got]
        if missing:
            return f"{path}: key {missing[0]!r} is missing"
        extra = [key for key in got if key not in want]
        if extra:
            return f"{path}: unexpected key {extra[0]!r}"
        for key, value in want.items():
            problem = json_difference(got[key], value, f"{path}.{key}")
            if problem:
                return problem
        return None
    if isinstance(want, list):
        if not isinstance(got, list):
            return f"{path}: expected a list, got {_shown(got)}"
        if len(got) != len(want):
            return f"{path}: expected {len(want)} items, got {len(got)}"
        for index, (item_got, item_want) in enumerate(zip(got, want, strict=True)):
            problem = json_difference(item_got, item_want, f"{path}[{index}]")
            if problem:
                return problem
        return None
    same_kind = isinstance(got, bool) == isinstance(want, bool) and (
        isinstance(got, int | float) == isinstance(want, int | float)
    )
    if same_kind and got == want:
        return None
    return f"{path}: expected {_shown(want)}, got {_shown(got)}"


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _quoted(text: str) -> str:
    return repr(text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…")


class _BadReference(ValueError):
    """The trace's reference does not suit the mode: an error for that trace, named."""


def _facts(reference: Any) -> list[str | dict[str, str]]:
    items = reference if isinstance(reference, list) else [reference]
    facts: list[str | dict[str, str]] = []
    for index, item in enumerate(items):
        where = f"reference[{index}]" if isinstance(reference, list) else "reference"
        if isinstance(item, str):
            if not item.strip():
                raise _BadReference(f"{where}: an empty fact")
            facts.append(item)
        elif isinstance(item, dict) and set(item) == {"regex"} and isinstance(item["regex"], str) and item["regex"]:
            facts.append(item)
        else:
            raise _BadReference(f'{where}: expected a string or {{"regex": "..."}}, got {_shown(item)}')
    return facts


def judge(config: dict[str, Any], trace: TraceInput) -> Outcome:
    """Compare the trace's output with its reference under a validated config."""
    reference = trace.reference
    if reference is None:
        return Outcome(skipped=NO_REFERENCE)
    mode = config["mode"]
    output = trace.output
    try:
        if mode == "exact":
            want = as_text(reference)
            got, wanted = (output.strip(), want.strip()) if config["strip"] else (output, want)
            if got == wanted:
                return Outcome(verdict="pass", reasoning="the output equals the reference")
            return Outcome(
                verdict="fail", reasoning=f"the output {_quoted(got)} differs from the reference {_quoted(wanted)}"
            )
        if mode == "normalized":
            options = {key: config[key] for key in ("case", "whitespace", "punctuation", "unicode", "diacritics")}
            got, wanted = normalize(output, **options), normalize(as_text(reference), **options)
            if got == wanted:
                return Outcome(verdict="pass", reasoning="the output equals the reference once normalized")
            return Outcome(
                verdict="fail",
                reasoning=f"normalized, the output {_quoted(got)} differs from the reference {_quoted(wanted)}",
            )
        if mode == "numeric":
            return _numeric(config, output, reference)
        if mode == "json":
            return _json(config, output, reference)
        return _facts_outcome(config, output, reference)
    except _BadReference as exc:
        return Outcome(error=str(exc))


def _numeric(config: dict[str, Any], output: str, reference: Any) -> Outcome:
    want = reference_numbers(reference)
    got = numbers_in(output)
    abs_tol, rel_tol = config["abs_tol"], config["rel_tol"]
    tolerance = f" (abs_tol {abs_tol:g}, rel_tol {rel_tol:g})" if abs_tol or rel_tol else ""
    if not want:
        raise _BadReference(f"reference: holds no number ({_shown(reference)})")
    if config["match"] == "last":
        if len(want) != 1:
            raise _BadReference(f'reference: holds {len(want)} numbers; match "last" needs exactly one')
        if not got:
            return Outcome(verdict="fail", reasoning=f"the output holds no number; the reference is {_number(want[0])}")
        last, wanted = _number(got[-1]), _number(want[0])
        if _close(got[-1], want[0], abs_tol, rel_tol):
            return Outcome(
                verdict="pass", reasoning=f"the output's last number {last} equals the reference {wanted}{tolerance}"
            )
        return Outcome(
            verdict="fail", reasoning=f"the output's last number {last} differs from the reference {wanted}{tolerance}"
        )
    if len(got) != len(want):
        return Outcome(verdict="fail", reasoning=f"the output holds {len(got)} numbers, the reference {len(want)}")
    for index, (number, wanted) in enumerate(zip(got, want, strict=True)):
        if not _close(number, wanted, abs_tol, rel_tol):
            shown = f"{_number(number)}, the reference's {_number(wanted)}{tolerance}"
            return Outcome(verdict="fail", reasoning=f"number {index + 1} of the output is {shown}")
    return Outcome(verdict="pass", reasoning=f"the output's {len(got)} numbers equal the reference's{tolerance}")


def _json(config: dict[str, Any], output: str, reference: Any) -> Outcome:
    want = reference
    if isinstance(reference, str):
        try:
            want = json.loads(reference)
        except ValueError:
            want = reference  # a JSON string, compared as one
    text = output
    if config["strip_code_fence"]:
        fenced = _FENCE.match(output)
        if fenced:
            text = fenced.group(1)
    try:
        got = json.loads(text)
    except ValueError as exc:
        return Outcome(verdict="fail", reasoning=f"the output is not valid JSON ({exc})")
    problem = json_difference(got, want)
    if problem is None:
        return Outcome(verdict="pass", reasoning="the output is the reference's JSON (key order aside)")
    return Outcome(verdict="fail", reasoning=f"the output's JSON differs from the reference: {problem}")


def _facts_outcome(config: dict[str, Any], output: str, reference: Any) -> Outcome:
    facts = _facts(reference)
    ignore_case = config["ignore_case"]
    haystack = output.casefold() if ignore_case else output
    missing: list[str] = []
    for index, fact in enumerate(facts):
        if isinstance(fact, str):
            if (fact.casefold() if ignore_case else fact) not in haystack:
                missing.append(_quoted(fact))
            continue
        pattern = fact["regex"]
        try:
            found = user_regex.search(pattern, output, ignore_case=ignore_case)
        except user_regex.error as exc:
            raise _BadReference(f"reference[{index}].regex: not a valid regular expression: {exc}") from None
        except user_regex.RegexTimeout as exc:
            raise _BadReference(f"reference[{index}].regex: {exc}") from None
        if not found:
            missing.append(f"/{pattern}/")
    if missing:
        return Outcome(verdict="fail", reasoning=f"missing {len(missing)} of {len(facts)} facts: {', '.join(missing)}")
    return Outcome(verdict="pass", reasoning=f"all {len(facts)} facts appear in the output")
