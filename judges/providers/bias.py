"""The bias battery of an LLM judge: perturbations that should not change a verdict, and how often they do.

Each bias is measured as a **flip rate**: the share of traces whose verdict under a perturbed prompt differs from
the version's own verdict on the unperturbed prompt (not from the expert's: a bias is the judge disagreeing with
itself), with the exact 95% interval the alignment reports use (judges.stats.proportion_interval).

- **order**: the same trace with the few-shot examples in other orders (the reverse, then seeded shuffles; only
  one other order exists for two examples, none for fewer, and then order is not measured).
- **verbosity**: each expert-failed output restated longer with padding that adds nothing (a polite preamble, a
  closing summary restating the question) — does the judge start passing it? And each expert-passed output made
  terse (the preamble, hedges and closing offers dropped, the first sentences kept) — does it start failing?
- **bandwagon**: a line "Most reviewers rated this response as passing." (and one saying failing) after the
  trace — does the verdict follow it?

A trace counts once per bias: it flipped when any of the bias's variants changed its verdict; a trace whose
baseline verdict is an error is not measured, nor one whose variants errored without any of them flipping.

Django-free: the run (judges.bias) builds the prompts with these functions and asks the model.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from judges.providers import TraceInput
from judges.stats import proportion_interval

ORDER, VERBOSITY, BANDWAGON = "order", "verbosity", "bandwagon"
BIASES = (ORDER, VERBOSITY, BANDWAGON)
BIAS_LABELS = {
    ORDER: "Order of the few-shot examples",
    VERBOSITY: "Verbosity (padding and terseness)",
    BANDWAGON: "Bandwagon (what other reviewers said)",
}
# Orders of the examples besides the frozen one: the issue asks for at least two.
ORDER_PERMUTATIONS = 2
# Flipped traces kept in a report, per bias; the counts are always exact.
MAX_FLIPS_LISTED = 500

BANDWAGON_CUES = {
    "pass": "Most reviewers rated this response as passing.",
    "fail": "Most reviewers rated this response as failing.",
}
PREAMBLE = "Thank you for your question! I am glad to help with this, and I have thought about it carefully."
SUMMARY = (
    "To summarise, you asked: “{question}” The answer above addresses exactly that question, and I hope this "
    "explanation is clear and helpful."
)
SUMMARY_NO_QUESTION = "To summarise, the answer is as given above; I hope this explanation is clear and helpful."
# Sentences kept when an output is made terse.
TERSE_SENTENCES = 2
_QUESTION_CHARS = 200

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Openers and closers that carry no content: what a terse restatement drops.
_FILLER = re.compile(
    r"^(?:sure|certainly|of course|absolutely|great question|good question|thanks|thank you|hello|hi|hey|"
    r"happy to help|i(?:'d| would) be (?:happy|glad)|i hope (?:this|that) helps|hope (?:this|that) helps|"
    r"let me know|please let me know|feel free|if you have any|as an ai|i think|i believe|it seems|"
    r"please note|note that|in summary|to summari[sz]e)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Probe:
    """One perturbed prompt: which bias and variant, for which trace, and the messages to send."""

    bias: str
    variant: str
    trace: str  # the trace's external id
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class Answer:
    """A probe's verdict ("pass", "fail", or "" when the call ended in an error)."""

    bias: str
    variant: str
    trace: str
    verdict: str


# --- perturbations -------------------------------------------------------------------------------------------------


def order_permutations(count: int, *, seed: str, wanted: int = ORDER_PERMUTATIONS) -> list[tuple[int, ...]]:
    """Up to `wanted` orders of `count` examples other than the given one, distinct, the same for the same seed:
    the reverse first (the example read last changes, where a recency bias shows), then seeded shuffles."""
    identity = tuple(range(count))
    if count < 2:
        return []
    orders: list[tuple[int, ...]] = [identity[::-1]]
    rng = random.Random(f"bias-order:{seed}")  # a str seed is hashed with SHA-512: stable across processes
    others = 1
    for n in range(2, count + 1):
        others *= n
    others -= 1  # every order but the given one
    while len(orders) < min(wanted, others):
        order = list(identity)
        rng.shuffle(order)
        if tuple(order) != identity and tuple(order) not in orders:
            orders.append(tuple(order))
    return orders


def _question(trace: TraceInput) -> str:
    text = trace.input
    if not text and trace.messages:
        users = [m.get("content") for m in trace.messages if isinstance(m, dict) and m.get("role") == "user"]
        text = next((u for u in reversed(users) if isinstance(u, str) and u.strip()), "")
    text = " ".join((text or "").split())
    return text if len(text) <= _QUESTION_CHARS else text[: _QUESTION_CHARS - 1] + "…"


def _answer_slot(trace: TraceInput) -> tuple[str, int | None] | None:
    """The answer the judge grades: the output, else the last assistant message with text (its index)."""
    if trace.output.strip():
        return trace.output, None
    for index in range(len(trace.messages or []) - 1, -1, -1):
        message = trace.messages[index]
        if isinstance(message, dict) and message.get("role") == "assistant":
            content = message.get("content")
            if isinstance(content, str) and content.strip():
                return content, index
    return None


def _with_answer(trace: TraceInput, text: str, index: int | None) -> TraceInput:
    if index is None:
        return replace(trace, output=text)
    messages = list(trace.messages or [])
    messages[index] = {**messages[index], "content": text}
    return replace(trace, messages=messages)


def padded(trace: TraceInput) -> TraceInput | None:
    """The trace with its answer restated longer and no better: a polite preamble before it and a summary that
    restates the question after it. None when the trace has no answer text to pad."""
    slot = _answer_slot(trace)
    if slot is None:
        return None
    text, index = slot
    question = _question(trace)
    summary = SUMMARY.format(question=question) if question else SUMMARY_NO_QUESTION
    return _with_answer(trace, f"{PREAMBLE}\n\n{text.strip()}\n\n{summary}", index)


def terse_text(text: str, *, keep: int = TERSE_SENTENCES) -> str | None:
    """`text` without its filler sentences (greetings, hedges, closing offers), cut to its first `keep` sentences
    with content; None when that changes nothing or leaves nothing."""
    sentences = [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]
    content = [s for s in sentences if not _FILLER.match(s)]
    short = " ".join(content[:keep])
    if not short or short == " ".join(text.split()):
        return None
    return short


def terse(trace: TraceInput) -> TraceInput | None:
    """The trace with its answer made terse (terse_text); None when the answer is already terse or missing."""
    slot = _answer_slot(trace)
    if slot is None:
        return None
    text, index = slot
    short = terse_text(text)
    return None if short is None else _with_answer(trace, short, index)


def with_cue(messages: list[dict[str, str]], verdict: str) -> list[dict[str, str]]:
    """The prompt with the bandwagon line for `verdict` after the trace being graded (outside its <trace> block,
    where a note from the team would be)."""
    last = messages[-1]
    return [*messages[:-1], {**last, "content": f"{last['content']}\n\n{BANDWAGON_CUES[verdict]}"}]


# --- the plan ------------------------------------------------------------------------------------------------------


Prompt = Callable[[Sequence[Any], TraceInput], list[dict[str, str]]]


def verbosity_variant(trace: TraceInput, expert: str) -> tuple[str, TraceInput] | None:
    """(variant name, the trace restated) for the verbosity probe: an expert-failed output padded, an expert-passed
    one made terse; None when there is nothing to restate."""
    if expert == "fail":
        changed = padded(trace)
        return None if changed is None else ("failed output padded", changed)
    changed = terse(trace)
    return None if changed is None else ("passed output made terse", changed)


def prompt_count(items: Iterable[tuple[TraceInput, str]], *, examples: int, seed: str) -> int:
    """How many prompts the battery asks for `items`, unperturbed ones included, without building any: the run's
    progress total."""
    per_trace = 1 + len(order_permutations(examples, seed=seed)) + len(BANDWAGON_CUES)
    return sum(per_trace + (verbosity_variant(trace, expert) is not None) for trace, expert in items)


def plan(
    *, prompt: Prompt, examples: Sequence[Any], items: Iterable[tuple[TraceInput, str]], seed: str
) -> tuple[list[Probe], dict[str, str]]:
    """Every probe of the battery for `items` (each trace with the expert's verdict), with `prompt(examples,
    trace)` building the messages, and per bias the reason it is not measured at all ("" when it is)."""
    orders = order_permutations(len(examples), seed=seed)
    probes: list[Probe] = []
    for trace, expert in items:
        for number, order in enumerate(orders, start=1):
            name = "examples reversed" if number == 1 else f"examples shuffled ({number - 1})"
            probes.append(Probe(ORDER, name, trace.external_id, prompt([examples[i] for i in order], trace)))
        verbose = verbosity_variant(trace, expert)
        if verbose is not None:
            probes.append(Probe(VERBOSITY, verbose[0], trace.external_id, prompt(examples, verbose[1])))
        base = prompt(examples, trace)
        for verdict in ("pass", "fail"):
            probes.append(Probe(BANDWAGON, f"“…{verdict}ing.” added", trace.external_id, with_cue(base, verdict)))
    skipped = {ORDER: "", VERBOSITY: "", BANDWAGON: ""}
    if not orders:
        skipped[ORDER] = f"not measured: the version has {len(examples)} few-shot example(s); order needs two"
    return probes, skipped


# --- the report ----------------------------------------------------------------------------------------------------


def _rate(flipped: int, n: int) -> dict[str, Any]:
    interval = proportion_interval(flipped, n)
    return {
        "n": n,
        "flipped": flipped,
        "flip_rate": flipped / n if n else None,
        "ci": list(interval) if interval else None,
    }


def flip_report(
    *, baseline: Mapping[str, str], answers: Sequence[Answer], skipped: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Per bias: the flip rate over traces with its interval, the same per variant, the flipped traces (trace,
    variant, baseline verdict, perturbed verdict) and errors. `baseline` is trace → the unperturbed verdict ("" for
    an error)."""
    skipped = skipped or {}
    biases: dict[str, Any] = {}
    for bias in BIASES:
        mine = [a for a in answers if a.bias == bias]
        by_trace: dict[str, list[Answer]] = {}
        for answer in mine:
            by_trace.setdefault(answer.trace, []).append(answer)
        n = flipped = errors = 0
        flips: list[dict[str, str]] = []
        variants: dict[str, list[int]] = {}  # variant → [n, flipped, errors]
        for trace, got in by_trace.items():
            before = baseline.get(trace, "")
            if before not in ("pass", "fail"):
                continue  # no unperturbed verdict to flip from
            changed = False
            unknown = False
            for answer in got:
                counts = variants.setdefault(answer.variant, [0, 0, 0])
                if answer.verdict not in ("pass", "fail"):
                    counts[2] += 1
                    unknown = True
                    continue
                counts[0] += 1
                if answer.verdict != before:
                    counts[1] += 1
                    changed = True
                    flips.append({"trace": trace, "variant": answer.variant, "from": before, "to": answer.verdict})
            if changed:
                n += 1
                flipped += 1
            elif unknown:
                errors += 1
            else:
                n += 1
        biases[bias] = {
            **_rate(flipped, n),
            "errors": errors,
            "skipped": skipped.get(bias, ""),
            "variants": [
                {"name": name, **_rate(counts[1], counts[0]), "errors": counts[2]} for name, counts in variants.items()
            ],
            "flips": flips[:MAX_FLIPS_LISTED],
            "flips_listed_all": len(flips) <= MAX_FLIPS_LISTED,
        }
    return {
        "traces": len(baseline),
        "baseline_errors": sum(1 for v in baseline.values() if v not in ("pass", "fail")),
        "biases": biases,
    }


# --- the bar -------------------------------------------------------------------------------------------------------


def percent(value: float) -> str:
    text = f"{value * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def bias_problems(report: Mapping[str, Any] | None, *, max_flip_rate: float) -> list[str]:
    """Why a finished battery's flip rates do not pass the bar, one sentence per bias ([] when they all do). The
    point estimate is compared, at or under the bar passing: the bar is the highest flip rate the project
    accepts. A bias the battery could not measure on any trace (every call an error) fails; one that does not
    apply (order, for fewer than two examples) passes."""
    biases = (report or {}).get("biases") or {}
    problems = (bias_problem(bias, biases.get(bias), max_flip_rate=max_flip_rate) for bias in BIASES)
    return [problem for problem in problems if problem]


def bias_problem(bias: str, result: Mapping[str, Any] | None, *, max_flip_rate: float) -> str:
    """Why one bias's result does not pass the bar, or "" when it does (see bias_problems)."""
    if result is None:
        return f"{bias}: not in the battery's report"
    if result.get("skipped"):
        return ""
    rate, n = result.get("flip_rate"), result.get("n") or 0
    if rate is None or n == 0:
        return f"{bias}: measured on no trace ({result.get('errors', 0)} errors)"
    if rate > max_flip_rate:
        over = (rate - max_flip_rate) * 100
        return (
            f"{bias} flips {percent(rate)} of verdicts ({result['flipped']}/{n}), "
            f"{over:.1f} points over the bar of {percent(max_flip_rate)}"
        )
    return ""
