"""The regression suite's numbers for one criterion, and the readable table of a run. No Django here.

Per criterion, from paired verdicts (candidate output and baseline output of the same golden input, judged by the
same judge version):
- pass rate = passes / cases with a verdict, with its 95% exact (Clopper–Pearson) interval;
- the difference to the baseline on the pairs where both have a verdict, with McNemar's exact test on the
  discordant pairs and a paired bootstrap interval;
- the verdict: `error` when any judgment errored (a gate that could not look is not a pass), else `regression`
  when the candidate is below the baseline with p < alpha, else `under_threshold` when the pass rate is below the
  criterion's floor, else `pass`. Every reason that applies is listed in `failures`.

Warnings (`suite_warnings`) say when the suite cannot do its job well, without failing it: a golden set outside
100–200 cases (too few: the intervals are too wide to see a regression; too many: slow, and costly with LLM judges),
and each criterion whose candidates pass more than 90% of the golden cases (the method aims for about 70%, so
failures stay visible and a regression has somewhere to show).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from judges.stats import mcnemar_exact, paired_bootstrap_difference, proportion_interval

PASS, FAIL = "pass", "fail"
# A case the judge did not judge, with a reason (a reference judge on a case without a reference): neither a verdict
# nor an error, so it is counted apart and fails nothing; the run warns about it.
SKIP = "skip"
VERDICTS = ("pass", "regression", "under_threshold", "error")
# The method aims a golden set at about a 70% pass rate: failures stay visible and a regression has room to show.
# Above 90% a criterion has too few failing cases left (a handful in 100) for a drop to reach significance.
AIM_PASS_RATE = 0.7
EASY_ABOVE = 0.9
# 100 cases give a 95% interval about 19 points wide at 70%; below that a regression hides in it. Past 200 the
# interval narrows by a point or two while every run (and every LLM judge call) grows with the set.
GOLDEN_MIN, GOLDEN_MAX = 100, 200


def criterion_numbers(
    candidate: Sequence[str],
    baseline: Sequence[str | None],
    *,
    threshold: float | None,
    alpha: float,
    seed: int = 0,
) -> dict[str, Any]:
    """The numbers for one criterion. `candidate[i]` and `baseline[i]` are the verdicts ("pass", "fail", "skip",
    or "" for an error) on the same golden input; a baseline of None means the case has no baseline (not paired)."""
    if len(candidate) != len(baseline):
        raise ValueError(f"need one baseline per case, got {len(candidate)} cases and {len(baseline)} baselines")
    judged = [v for v in candidate if v in (PASS, FAIL)]
    passed = sum(v == PASS for v in judged)
    skipped = sum(v == SKIP for v in candidate)
    errors = len(candidate) - len(judged) - skipped
    rate = passed / len(judged) if judged else None
    interval = proportion_interval(passed, len(judged))
    pairs = [
        (b == PASS, c == PASS)
        for c, b in zip(candidate, baseline, strict=True)
        if c in (PASS, FAIL) and b in (PASS, FAIL)
    ]
    baseline_errors = sum(1 for b in baseline if b == "")
    only_baseline = sum(1 for b, c in pairs if b and not c)
    only_candidate = sum(1 for b, c in pairs if c and not b)
    baseline_rate = difference = p_value = None
    difference_ci: list[float] | None = None
    if pairs:
        baseline_rate = sum(b for b, _ in pairs) / len(pairs)
        paired_candidate_rate = sum(c for _, c in pairs) / len(pairs)
        difference = paired_candidate_rate - baseline_rate
        p_value = mcnemar_exact(only_baseline, only_candidate)
        _, low, high = paired_bootstrap_difference([b for b, _ in pairs], [c for _, c in pairs], seed=seed)
        difference_ci = [low, high]
    failures: list[str] = []
    if errors:
        failures.append(f"{errors} judgment{'s' if errors != 1 else ''} errored")
    regressed = difference is not None and difference < 0 and p_value is not None and p_value < alpha
    if regressed:
        failures.append(
            f"regressed by {-difference * 100:.1f} points against the baseline (McNemar p = {p_value:.3g} < {alpha:g})"
        )
    under = threshold is not None and (rate is None or rate < threshold)
    if under:
        shown = "no verdict" if rate is None else f"{rate:.1%}"
        failures.append(f"pass rate {shown} is under the threshold {threshold:.1%}")
    verdict = "error" if errors else "regression" if regressed else "under_threshold" if under else "pass"
    return {
        "n": len(candidate),
        "judged": len(judged),
        "passed": passed,
        "errors": errors,
        "skipped": skipped,
        "pass_rate": rate,
        "ci": list(interval) if interval else None,
        "threshold": threshold,
        "paired_n": len(pairs),
        "baseline_pass_rate": baseline_rate,
        "baseline_errors": baseline_errors,
        "difference": difference,
        "difference_ci": difference_ci,
        "only_baseline_passed": only_baseline,
        "only_candidate_passed": only_candidate,
        "p_value": p_value,
        "improved": bool(difference is not None and difference > 0 and p_value is not None and p_value < alpha),
        "verdict": verdict,
        "failures": failures,
    }


def too_easy_warnings(criteria: Sequence[dict[str, Any]]) -> list[str]:
    """One warning per criterion whose candidates pass more than 90% of the golden cases they were judged on,
    naming it and its rate; a criterion with no verdict has no rate and no warning."""
    return [
        f"suite too easy for {c['criterion']}: its candidates pass {c['passed']} of {c['judged']} golden cases "
        f"({c['pass_rate']:.1%}), above {EASY_ABOVE:.0%}, so too few failures are left to show a regression; "
        f"aim for about {AIM_PASS_RATE:.0%} (add harder golden cases, e.g. past failures)"
        for c in criteria
        if c["pass_rate"] is not None and c["pass_rate"] > EASY_ABOVE
    ]


def _interval_at_aim(cases: int) -> tuple[float, float]:
    """The 95% interval of a criterion passing about 70% of `cases` (exact, as the run's own): how precise a run of that
    size is."""
    interval = proportion_interval(round(AIM_PASS_RATE * cases), cases)
    assert interval is not None  # cases > 0
    return interval


def golden_size_warning(cases: int) -> str | None:
    """Why a golden set of `cases` cases is too small or too large for the suite, or None within 100–200."""
    if cases < 1 or GOLDEN_MIN <= cases <= GOLDEN_MAX:
        return None
    low, high = _interval_at_aim(cases)
    width = round((high - low) * 100)
    if cases < GOLDEN_MIN:
        return (
            f"the golden set has {cases} cases, fewer than {GOLDEN_MIN}: at a {AIM_PASS_RATE:.0%} pass rate a "
            f"criterion's 95% interval is {width} points wide ({low:.0%}–{high:.0%}), too wide to see a regression; "
            f"grow it to {GOLDEN_MIN}–{GOLDEN_MAX} cases (past failures, edge cases)"
        )
    at_max_low, at_max_high = _interval_at_aim(GOLDEN_MAX)
    return (
        f"the golden set has {cases} cases, more than {GOLDEN_MAX}: every run judges each case with every "
        f"criterion's judge, which is slow and, with LLM judges, costly ({cases} calls per LLM judge per run), for "
        f"little more precision (at a {AIM_PASS_RATE:.0%} pass rate the 95% interval is {width} points wide, "
        f"{round((at_max_high - at_max_low) * 100)} at {GOLDEN_MAX} cases); keep it to {GOLDEN_MIN}–{GOLDEN_MAX} "
        "cases (retire cases every release passes)"
    )


def suite_warnings(criteria: Sequence[dict[str, Any]], *, cases: int) -> list[str]:
    """The warnings about the suite itself: the golden set's size first, then each criterion that is too easy."""
    size = golden_size_warning(cases)
    skips = [
        f"{c['criterion']}: {c['skipped']} case{'s' if c['skipped'] != 1 else ''} skipped by its judge (e.g. no "
        "reference on the golden entry): not judged, so not counted in its pass rate"
        for c in criteria
        if c.get("skipped")
    ]
    return ([size] if size else []) + too_easy_warnings(criteria) + skips


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.1f} pt"


def evidence_text(evidence: dict[str, Any]) -> str:
    """ "on test (n = 53): TPR 97.7% (88.0%–99.9%), TNR 100.0% (66.4%–100.0%)": what the gate's judge showed."""

    def rate(name: str) -> str:
        interval = evidence["ci"].get(name)
        around = f" ({interval[0]:.1%}–{interval[1]:.1%})" if interval else ""
        return f"{name.upper()} {evidence[name]:.1%}{around}"

    return f"on {evidence['split']} (n = {evidence['n']}): {rate('tpr')}, {rate('tnr')}"


def format_table(result: dict[str, Any]) -> str:
    """The run as a plain-text table, one row per criterion, then the uncovered criteria, warnings and the outcome."""
    header = ("criterion", "judge", "n", "pass rate", "95% CI", "baseline", "diff", "p", "verdict")
    rows = [header]
    for c in result["criteria"]:
        ci = "—" if c["ci"] is None else f"{c['ci'][0]:.1%}–{c['ci'][1]:.1%}"
        rows.append(
            (
                c["criterion"],
                f"{c['judge']} v{c['version']} ({c['kind']})",
                str(c["n"]),
                _pct(c["pass_rate"]),
                ci,
                _pct(c["baseline_pass_rate"]),
                _signed(c["difference"]),
                "—" if c["p_value"] is None else f"{c['p_value']:.3g}",
                c["verdict"].upper() if c["verdict"] != "pass" else "pass",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    baseline = result["baseline"]
    out = [
        f"Suite run {result['run_id']}{' (' + result['name'] + ')' if result['name'] else ''}: "
        f"{result['cases']} cases, golden set v{result['golden_version']}, baseline: {baseline['description']}",
        "",
        *lines,
    ]
    for c in result["criteria"]:
        if evidence := c.get("judge_evidence"):
            out.append(f"  {c['criterion']}: judged by {c['judge']} v{c['version']}, {evidence_text(evidence)}")
        for failure in c["failures"]:
            out.append(f"  {c['criterion']}: {failure}")
        if c["threshold"] is not None and not c["failures"]:
            out.append(f"  {c['criterion']}: meets its threshold {c['threshold']:.1%}")
    if result["not_covered"]:
        out.append("")
        out.append("Not covered (no promoted judge that runs here; not a failure):")
        out.extend(f"  {c['criterion']}: {c['reason']}" for c in result["not_covered"])
    if result["warnings"]:
        out.append("")
        out.extend(f"warning: {w}" for w in result["warnings"])
    out.append("")
    failing = [c["criterion"] for c in result["criteria"] if c["verdict"] != "pass"]
    if failing:
        out.append(f"FAILED ({', '.join(failing)}): exit 1")
    else:
        out.append("OK: exit 0")
    return "\n".join(out)
