"""`promote_judge --project SLUG --judge NAME --version N [--comment TEXT] [--user USERNAME]`: make a judge version
its criterion's promoted judge, for scripts. Exits with status 1 and the reason when the version is refused
(judges.promotions.RULE: its dev run must reach the project's bar and its test run meet it with the 95% lower
bounds)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser

from judges.evidence import bound_percent
from judges.management.commands._common import JudgeVersionCommand
from judges.promotions import PromotionRefused, judge_version_promote, promotion_bar


class Command(JudgeVersionCommand):
    help = (
        "Promote a judge version for its criterion (refused, exit 1, unless its dev run reaches the project's bar "
        "and its test run meets it with the 95% lower bounds)."
    )

    version_required = True

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--comment", default="", help="why this version (kept with the promotion)")
        parser.add_argument("--user", metavar="USERNAME", help="recorded as the promoter (default: nobody)")

    def handle(self, *args: Any, **options: Any) -> None:
        version = self.judge_version(options)
        judge, project = version.judge, version.judge.project
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"--user: no user {options['user']!r}")
        try:
            promotion = judge_version_promote(version=version, user=user, comment=options["comment"])
        except PromotionRefused as exc:
            raise CommandError(f"refused: {exc}") from None
        test = promotion_bar(project=project).check(promotion.report)
        dev = promotion.dev_report or {}
        self.stdout.write(
            f"promoted {version} for criterion {judge.criterion.name!r} on test run #{promotion.test_run_id}: "
            f"TPR {test.tpr.value:.3f} (95% lower bound {bound_percent(test.tpr.low)}), "
            f"TNR {test.tnr.value:.3f} (95% lower bound {bound_percent(test.tnr.low)}); "
            f"dev run #{promotion.dev_run_id}: TPR {dev.get('tpr', 0):.3f}, TNR {dev.get('tnr', 0):.3f}; "
            f"bar TPR ≥ {promotion.min_tpr:.0%}, TNR ≥ {promotion.min_tnr:.0%}"
        )
