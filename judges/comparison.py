"""Paired comparisons, Django-free: two judge versions against the expert on the same traces, and two suite runs on
the same golden cases. Built on judges.stats; the pages only fetch counts and show what these return.

Both work from counts of paired outcomes, never per-trace rows in Python, so a comparison over 200,000 traces is a
GROUP BY in the database and milliseconds here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from judges.stats import (
    DEFAULT_RESAMPLES,
    ConfusionMatrix,
    confidence_intervals,
    labels_needed,
    mcnemar_exact,
    metrics,
    paired_bootstrap_difference_from_counts,
    proportion_interval,
)

PASS, FAIL = "pass", "fail"
ALPHA = 0.05
Interval = tuple[float, float]


def format_p(p: float) -> str:
    """`p = 0.004`, `p = 0.41`, `p < 0.001`: enough digits to read, none that pretend to precision."""
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return f"p = {p:.3f}"
    return f"p = {p:.2f}"


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


@dataclass(frozen=True)
class Difference:
    """B minus A with a 95% paired interval (judges.stats.paired_bootstrap_difference_from_counts: each trace's pair
    kept together, a Bayesian bootstrap over the three kinds of pair, so no discordant pair is not [0, 0])."""

    estimate: float
    low: float
    high: float

    @property
    def text(self) -> str:
        return f"{_points(self.estimate)} points [{self.low * 100:.1f}, {self.high * 100:.1f}]"


def paired_difference_from_counts(
    only_a: int, same: int, only_b: int, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Difference | None:
    """judges.stats.paired_bootstrap_difference_from_counts as a Difference; None when there is no pair."""
    if only_a + same + only_b == 0:
        return None
    return Difference(*paired_bootstrap_difference_from_counts(only_a, same, only_b, resamples=resamples, seed=seed))


# --- two judge versions against the expert ----------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeComparison:
    n: int  # traces both versions judged (a verdict, not an error) that the expert labelled
    cm_a: ConfusionMatrix
    cm_b: ConfusionMatrix
    metrics_a: dict[str, float | None]
    metrics_b: dict[str, float | None]
    ci_a: dict[str, Interval | None]
    ci_b: dict[str, Interval | None]
    both_right: int
    only_a_right: int
    only_b_right: int
    both_wrong: int
    p_value: float
    accuracy: Difference | None
    # Paired within the expert's passes (TPR) and fails (TNR): the bootstrap keeps each class's count fixed.
    tpr: Difference | None
    tnr: Difference | None
    verdict: str
    significant: bool


def compare_judges(
    cells: Mapping[tuple[str, str, str], int],
    *,
    name_a: str = "A",
    name_b: str = "B",
    min_tpr: float = 0.9,
    min_tnr: float = 0.9,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> JudgeComparison:
    """From counts of (expert, A's verdict, B's verdict) triples on the traces both judged, each "pass"/"fail".

    McNemar's exact test asks whether "only A agrees with the expert" and "only B agrees" are equally likely; the
    accuracy difference is B − A with a paired bootstrap interval. Without a significant difference the verdict
    says how many labels of each class the better version's TPR/TNR need before their 95% lower bound clears the
    bar (labels_needed), since more labels is what would settle it.
    """
    for key, count in cells.items():
        if len(key) != 3 or any(v not in (PASS, FAIL) for v in key) or count < 0:
            raise ValueError(f"cell {key!r}: expected (expert, a, b) verdicts 'pass'/'fail' and a count >= 0")

    def count(e: str | None = None, a: str | None = None, b: str | None = None) -> int:
        return sum(
            c
            for (ev, av, bv), c in cells.items()
            if (e is None or ev == e) and (a is None or av == a) and (b is None or bv == b)
        )

    cm_a = ConfusionMatrix(tp=count(PASS, PASS), fn=count(PASS, FAIL), fp=count(FAIL, PASS), tn=count(FAIL, FAIL))
    cm_b = ConfusionMatrix(
        tp=count(PASS, b=PASS), fn=count(PASS, b=FAIL), fp=count(FAIL, b=PASS), tn=count(FAIL, b=FAIL)
    )
    right = {(e, a, b): (a == e, b == e) for (e, a, b) in cells}
    both_right = sum(c for k, c in cells.items() if right[k] == (True, True))
    only_a = sum(c for k, c in cells.items() if right[k] == (True, False))
    only_b = sum(c for k, c in cells.items() if right[k] == (False, True))
    both_wrong = sum(c for k, c in cells.items() if right[k] == (False, False))
    p_value = mcnemar_exact(only_a, only_b)

    def paired(expert: str | None, seed: int) -> Difference | None:
        # Each trace's pair of "agrees with the expert" outcomes, reduced to (only A, both or neither, only B).
        tally = [0, 0, 0]
        for key, c in cells.items():
            if expert is None or key[0] == expert:
                ra, rb = right[key]
                tally[1 + int(rb) - int(ra)] += c
        return paired_difference_from_counts(*tally, resamples=resamples, seed=seed)

    accuracy = paired(None, seed)
    tpr = paired(PASS, seed + 1)
    tnr = paired(FAIL, seed + 2)
    n = cm_a.n
    metrics_a, metrics_b = metrics(cm_a), metrics(cm_b)
    significant = n > 0 and p_value < ALPHA and only_a != only_b
    if n == 0:
        verdict = "No trace was judged by both versions with a verdict and labelled by the expert: nothing to compare."
    elif significant:
        better, worse = (name_b, name_a) if only_b > only_a else (name_a, name_b)
        verdict = (
            f"{better} agrees with the expert more often than {worse}: {accuracy.text if accuracy else ''}, "
            f"McNemar {format_p(p_value)}."
        )
    else:
        # The better-looking version (B on a tie): how many labels would make its rates' lower bounds clear the bar.
        better_name, better_cm, better_metrics = (
            (name_a, cm_a, metrics_a) if only_a > only_b else (name_b, cm_b, metrics_b)
        )
        needs = []
        for key, target, have, cls in (
            ("tpr", min_tpr, better_cm.tp + better_cm.fn, "pass"),
            ("tnr", min_tnr, better_cm.tn + better_cm.fp, "fail"),
        ):
            rate = better_metrics[key]
            if rate is None:
                needs.append(f"its {key.upper()} is undefined: label some {cls}es")
                continue
            needed = labels_needed(rate, target) if target < 1 else None
            if needed is None:
                needs.append(f"its {key.upper()} of {rate:.0%} is not above the {target:.0%} bar, whatever the labels")
            else:
                needs.append(
                    f"its {key.upper()} of {rate:.0%} needs {needed:,} {cls} labels (these runs share {have:,})"
                )
        diff = f" ({accuracy.text})" if accuracy else ""
        verdict = (
            f"No significant difference{diff}, McNemar {format_p(p_value)}: keep labelling — labels_needed says, "
            f"for {better_name}'s 95% lower bound to clear the bar, " + "; ".join(needs) + "."
        )
    return JudgeComparison(
        n=n,
        cm_a=cm_a,
        cm_b=cm_b,
        metrics_a=metrics_a,
        metrics_b=metrics_b,
        ci_a=confidence_intervals(cm_a, resamples=resamples, seed=seed),
        ci_b=confidence_intervals(cm_b, resamples=resamples, seed=seed),
        both_right=both_right,
        only_a_right=only_a,
        only_b_right=only_b,
        both_wrong=both_wrong,
        p_value=p_value,
        accuracy=accuracy,
        tpr=tpr,
        tnr=tnr,
        verdict=verdict,
        significant=significant,
    )


# --- two suite runs, per criterion ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateWithInterval:
    passes: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.passes / self.n if self.n else None

    @property
    def interval(self) -> Interval | None:
        return proportion_interval(self.passes, self.n)


@dataclass(frozen=True)
class RunComparison:
    a: RateWithInterval  # every case of run A with a verdict on the criterion
    b: RateWithInterval
    paired: int  # cases in both runs (same golden trace) with a verdict in both
    pass_to_fail: int
    fail_to_pass: int
    p_value: float
    difference: Difference | None  # B's pass rate minus A's on the paired cases
    verdict: str
    outcome: str  # "better", "worse", "same" or "none" (nothing paired)


def compare_runs(
    a: RateWithInterval,
    b: RateWithInterval,
    pairs: Mapping[tuple[str, str], int],
    *,
    name_a: str = "A",
    name_b: str = "B",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> RunComparison:
    """One criterion of two suite runs: `pairs` counts (A's verdict, B's verdict) on the cases both ran. McNemar on
    the flips (pass→fail against fail→pass), the pass-rate difference B − A with a paired bootstrap interval."""
    for key, c in pairs.items():
        if len(key) != 2 or any(v not in (PASS, FAIL) for v in key) or c < 0:
            raise ValueError(f"pair {key!r}: expected (a, b) verdicts 'pass'/'fail' and a count >= 0")
    pass_to_fail = pairs.get((PASS, FAIL), 0)
    fail_to_pass = pairs.get((FAIL, PASS), 0)
    paired = sum(pairs.values())
    p_value = mcnemar_exact(pass_to_fail, fail_to_pass)
    difference = paired_difference_from_counts(
        pass_to_fail, paired - pass_to_fail - fail_to_pass, fail_to_pass, resamples=resamples, seed=seed
    )
    if paired == 0:
        outcome = "none"
        verdict = f"No case is in both runs with a verdict: {name_a} and {name_b} cannot be compared on it."
    elif p_value < ALPHA and pass_to_fail != fail_to_pass:
        outcome = "better" if fail_to_pass > pass_to_fail else "worse"
        word = "passes more often than" if outcome == "better" else "regresses against"
        verdict = (
            f"{name_b} {word} {name_a}: {difference.text if difference else ''}, McNemar {format_p(p_value)} "
            f"({pass_to_fail} pass→fail, {fail_to_pass} fail→pass)."
        )
    else:
        outcome = "same"
        verdict = (
            f"No significant difference ({difference.text if difference else ''}, McNemar {format_p(p_value)}; "
            f"{pass_to_fail} pass→fail, {fail_to_pass} fail→pass)."
        )
    return RunComparison(
        a=a,
        b=b,
        paired=paired,
        pass_to_fail=pass_to_fail,
        fail_to_pass=fail_to_pass,
        p_value=p_value,
        difference=difference,
        verdict=verdict,
        outcome=outcome,
    )
