"""KBS settings that validation must refuse before anything is registered (review findings):
each is the only mistake in an otherwise valid stack and is named by its config key."""

from __future__ import annotations

from typing import Any

import pytest

from components import runtime
from spec.errors import SpecError
from spec.validate import validate
from tests.components.kbs.test_kbs_render import BASE, kbs


def errors(config: dict[str, Any]) -> list[str]:
    try:
        validate(config, stack="t")
    except SpecError as exc:
        return sorted(i.path for i in exc.issues if i.severity == "error")
    return []


def test_base_is_valid():
    assert errors(BASE) == []


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"expose": "nodeport", "hostname": "kbs.example.com"}, "coco:kbs.nodePort"),
        ({"expose": "ingress", "hostname": "kbs.example.com", "insecureHttp": True},
         "coco:kbs.insecureHttp"),
        ({"namespace": runtime.NAMESPACE}, "coco:kbs.namespace"),
        ({"namespace": "confidential-containers-system"}, "coco:kbs.namespace"),
        ({"namespace": "default"}, "coco:kbs.namespace"),
        ({"namespace": "kube-public"}, "coco:kbs.namespace"),
        ({"referenceValues": {"bad name": "x"}}, "coco:kbs.referenceValues.bad name"),
        ({"referenceValues": {"snp_smt_enabled": [True, False]}},
         "coco:kbs.referenceValues.snp_smt_enabled"),
    ],
)
def test_refused(changes, path):
    assert errors(kbs(**changes)) == [path]


@pytest.mark.parametrize(
    "changes",
    [
        {"expose": "nodeport", "hostname": "kbs.example.com", "nodePort": 30443},
        {"expose": "nodeport"},  # no hostname: guests use the in-cluster name
        {"namespace": "my-kbs"},
        {"referenceValues": {"snp_smt_enabled": [True]}},
    ],
)
def test_accepted(changes):
    assert errors(kbs(**changes)) == []
