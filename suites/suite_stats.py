"""The regression suite's numbers for one criterion, and the readable table of a run. No Django here.

Per criterion, from paired verdicts (candidate output and baseline output of the same golden input, judged by the
same judge version):
- pass rate = passes / cases with a verdict, with its 95% exact (Clopper–Pearson) interval;
- the difference to the baseline on the pairs where both have a verdict, with McNemar's exact test on the
  discordant pairs and a paired bootstrap interval;
- the verdict: `error` when any judgment errored (a gate that could not look is not a pass), else `regression`
  when the candidate is below the baseline with p < alpha, else `under_threshold` when the pass rate is below the
  criterion's floor, else `pass`. Every reason that applies is listed in `failures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from judges.stats import mcnemar_exact, paired_bootstrap_difference, proportion_interval

PASS, FAIL = "pass", "fail"
VERDICTS = ("pass", "regression", "under_threshold", "error")
# "suite too easy": a suite every candidate passes cannot show a regression; aim for about 70%.
TOO_EASY_WARNING = (
    "suite too easy: every criterion passes 100% of its cases, so a regression cannot show; "
    "aim for about 70% (add harder golden cases, e.g. past failures)"
)


def criterion_numbers(
    candidate: Sequence[str],
    baseline: Sequence[str | None],
    *,
    threshold: float | None,
    alpha: float,
    seed: int = 0,
) -> dict[str, Any]:
    """The numbers for one criterion. `candidate[i]` and `baseline[i]` are the verdicts ("pass", "fail", or ""
    for an error) on the same golden input; a baseline of None means the case has no baseline (not paired)."""
    if len(candidate) != len(baseline):
        raise ValueError(f"need one baseline per case, got {len(candidate)} cases and {len(baseline)} baselines")
    judged = [v for v in candidate if v in (PASS, FAIL)]
    passed = sum(v == PASS for v in judged)
    errors = len(candidate) - len(judged)
    rate = passed / len(judged) if judged else None
    interval = proportion_interval(passed, len(judged))
    pairs = [(b == PASS, c == PASS) for c, b in zip(candidate, baseline, strict=True) if c and b]
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


def too_easy(criteria: Sequence[dict[str, Any]]) -> bool:
    """Every judged criterion passed every case (and there is at least one)."""
    return bool(criteria) and all(c["pass_rate"] == 1.0 and not c["errors"] for c in criteria)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.1f} pt"


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
