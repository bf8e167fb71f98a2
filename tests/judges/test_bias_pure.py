"""The bias battery's perturbations and flip rates (judges.providers.bias): pure, no database."""

from __future__ import annotations

import pytest

from judges.providers import TraceInput
from judges.providers.bias import (
    BANDWAGON,
    BANDWAGON_CUES,
    ORDER,
    PREAMBLE,
    VERBOSITY,
    Answer,
    bias_problems,
    flip_report,
    order_permutations,
    padded,
    plan,
    prompt_count,
    terse,
    terse_text,
    with_cue,
)
from judges.providers.llm import Example, build_messages, render_trace


def test_orders_are_distinct_from_the_frozen_one_seeded_and_the_reverse_comes_first():
    orders = order_permutations(4, seed="v1")
    assert orders[0] == (3, 2, 1, 0) and len(orders) == 2
    assert len(set(orders)) == 2 and (0, 1, 2, 3) not in orders
    assert order_permutations(4, seed="v1") == orders  # the same seed, the same orders
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    assert order_permutations(2, seed="v1") == [(1, 0)]  # the only other order of two
    assert order_permutations(1, seed="v1") == [] and order_permutations(0, seed="v1") == []
    assert len(order_permutations(3, seed="x", wanted=5)) == 5  # 3! - 1 other orders exist


def test_padding_wraps_the_answer_in_content_free_politeness_and_restates_the_question():
    trace = TraceInput("t", input="What is the  refund window?", output="30 days.")
    longer = padded(trace)
    assert longer.output.startswith(PREAMBLE) and "\n\n30 days.\n\n" in longer.output
    assert "you asked: “What is the refund window?”" in longer.output
    assert len(longer.output) > 4 * len(trace.output) and longer.input == trace.input
    # A chat: the last assistant message with text is the answer that is padded.
    chat = TraceInput("c", messages=[{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}])
    padded_chat = padded(chat).messages[1]["content"]
    assert padded_chat.startswith(PREAMBLE) and "Hello." in padded_chat and "you asked: “Hi?”" in padded_chat
    assert chat.messages[1]["content"] == "Hello."  # the original is left as it was
    assert padded(TraceInput("e", input="Q?")) is None


def test_terse_drops_greetings_hedges_and_offers_and_keeps_the_first_sentences_with_content():
    text = (
        "Sure! Great question. The refund window is 30 days. Refunds go to the original card. "
        "Store credit is also possible. I hope this helps! Let me know if you need anything else."
    )
    assert terse_text(text) == "The refund window is 30 days. Refunds go to the original card."
    assert terse_text("The refund window is 30 days.") is None  # already terse: nothing to measure
    assert terse_text("Thanks! Hope this helps.") is None  # nothing left with content
    trace = TraceInput("t", input="Refunds?", output=text)
    assert terse(trace).output == "The refund window is 30 days. Refunds go to the original card."


def test_the_bandwagon_line_follows_the_graded_trace_outside_its_block():
    messages = [{"role": "system", "content": "rubric"}, {"role": "user", "content": "<trace>x</trace>"}]
    cued = with_cue(messages, "pass")
    assert cued[-1]["content"] == "<trace>x</trace>\n\nMost reviewers rated this response as passing."
    assert messages[-1]["content"] == "<trace>x</trace>"
    assert with_cue(messages, "fail")[-1]["content"].endswith(BANDWAGON_CUES["fail"])


def _prompt(examples, trace):
    return build_messages(criterion="c", definition="d", instructions="", examples=examples, trace=trace)


def test_the_plan_asks_each_bias_of_each_trace_and_says_when_order_cannot_be_measured():
    examples = [
        Example(render_trace(TraceInput(f"e{i}", output=f"example {i}")), v, f"critique {i}")
        for i, v in enumerate(["fail", "pass", "fail"])
    ]
    items = [
        (TraceInput("f", input="Q?", output="Wrong."), "fail"),
        (TraceInput("p", input="Q?", output="Sure! It is 4. Two plus two. Hope this helps."), "pass"),
        (TraceInput("short", input="Q?", output="It is 4."), "pass"),  # already terse: no verbosity probe
    ]
    probes, skipped = plan(prompt=_prompt, examples=examples, items=items, seed="v9")
    kinds = [(p.trace, p.bias) for p in probes]
    assert kinds.count(("f", ORDER)) == 2 and kinds.count(("f", VERBOSITY)) == 1 and kinds.count(("f", BANDWAGON)) == 2
    assert kinds.count(("p", VERBOSITY)) == 1 and kinds.count(("short", VERBOSITY)) == 0
    reversed_probe = next(p for p in probes if p.trace == "f" and p.variant == "examples reversed")
    assert reversed_probe.messages[1]["content"] == examples[2].shown  # the last example now comes first
    assert skipped == {ORDER: "", VERBOSITY: "", BANDWAGON: ""}
    _, skipped = plan(prompt=_prompt, examples=examples[:1], items=items, seed="v9")
    assert skipped[ORDER].startswith("not measured: the version has 1 few-shot example(s)")


def test_a_trace_flips_when_any_variant_changes_its_verdict_and_errors_are_counted_apart():
    baseline = {"a": "fail", "b": "pass", "c": "fail", "d": ""}
    answers = [
        Answer(BANDWAGON, "pass cue", "a", "pass"),  # flips a
        Answer(BANDWAGON, "fail cue", "a", "fail"),
        Answer(BANDWAGON, "pass cue", "b", "pass"),
        Answer(BANDWAGON, "fail cue", "b", "pass"),
        Answer(BANDWAGON, "pass cue", "c", ""),  # an error and no flip: c is not measured
        Answer(BANDWAGON, "fail cue", "c", "fail"),
        Answer(BANDWAGON, "pass cue", "d", "pass"),  # no baseline verdict: not measured
    ]
    report = flip_report(baseline=baseline, answers=answers)
    bandwagon = report["biases"][BANDWAGON]
    assert (bandwagon["n"], bandwagon["flipped"], bandwagon["errors"]) == (2, 1, 1)
    assert bandwagon["flip_rate"] == 0.5 and 0 < bandwagon["ci"][0] < 0.5 < bandwagon["ci"][1] < 1
    assert bandwagon["flips"] == [{"trace": "a", "variant": "pass cue", "from": "fail", "to": "pass"}]
    pass_cue = next(v for v in bandwagon["variants"] if v["name"] == "pass cue")
    assert (pass_cue["n"], pass_cue["flipped"], pass_cue["errors"]) == (2, 1, 1)
    assert report["baseline_errors"] == 1 and report["traces"] == 4
    assert report["biases"][ORDER]["n"] == 0 and report["biases"][ORDER]["flip_rate"] is None


def _report(order=(0, 20), verbosity=(1, 20), bandwagon=(1, 20), order_skipped=""):
    biases = {}
    for name, (flipped, n) in ((ORDER, order), (VERBOSITY, verbosity), (BANDWAGON, bandwagon)):
        biases[name] = {"n": n, "flipped": flipped, "flip_rate": flipped / n if n else None, "errors": 0,
                        "skipped": order_skipped if name == ORDER else ""}  # fmt: skip
    return {"biases": biases}


@pytest.mark.parametrize(
    ("report", "problems"),
    [
        (_report(), []),  # 5% is at the bar: a maximum, passed
        (_report(bandwagon=(3, 20)), ["bandwagon flips 15% of verdicts (3/20), 10.0 points over the bar of 5%"]),
        (_report(order=(0, 0), order_skipped="not measured: …"), []),
        (_report(verbosity=(0, 0)), ["verbosity: measured on no trace (0 errors)"]),
        (None, [f"{b}: not in the battery's report" for b in (ORDER, VERBOSITY, BANDWAGON)]),
    ],
)
def test_each_bias_over_the_bar_is_named_with_how_far_off(report, problems):
    assert bias_problems(report, max_flip_rate=0.05) == problems


def test_the_prompt_count_is_what_the_plan_asks_plus_the_unperturbed_prompts():
    examples = [Example(render_trace(TraceInput(f"e{i}", output="x")), "pass", "c") for i in range(3)]
    items = [
        (TraceInput("f", input="Q?", output="Wrong."), "fail"),
        (TraceInput("short", input="Q?", output="It is 4."), "pass"),
    ]
    probes, _ = plan(prompt=_prompt, examples=examples, items=items, seed="s")
    assert prompt_count(items, examples=3, seed="s") == len(probes) + len(items) == 2 + 2 * 2 + 1 + 2 * 2
