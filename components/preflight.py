"""`coco check STACK --live`: ask each cloud the stack uses whether its sizes and places exist.

The offline check (spec.rules against spec.catalogue) knows families and region
shapes; only the cloud knows whether a size is offered in a region or zone today and whether the
subscription or account may use it. Each cloud package has `preflight.live_check(spec)`
(components/<cloud>/preflight.py): it builds its SDK client from the environment's credentials,
or raises NoCredentials, and returns ConfigIssues with key paths like the offline check.

Non-goals: creating anything, quota checks beyond what the capability APIs report.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from spec.errors import ConfigIssue, NoCredentials
from spec.extras import clouds_of
from spec.model import Spec

Checker = Callable[[Spec], list[ConfigIssue]]


def _default_checker(cloud: str) -> Checker:
    module = importlib.import_module(f"components.{cloud}.preflight")
    checker: Checker = module.live_check
    return checker


@dataclass
class LiveResult:
    issues: list[ConfigIssue] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    skipped: list[NoCredentials] = field(default_factory=list)


def run(spec: Spec, checkers: Mapping[str, Checker] | None = None) -> LiveResult:
    """Run the live check of every cloud the stack uses; a cloud without credentials is
    skipped (reported), never guessed."""
    result = LiveResult()
    for cloud in clouds_of(spec):
        check = (checkers or {}).get(cloud) or _default_checker(cloud)
        try:
            found = check(spec)
        except NoCredentials as exc:
            result.skipped.append(exc)
            continue
        result.checked.append(cloud)
        result.issues.extend(found)
    result.issues.sort()
    return result
