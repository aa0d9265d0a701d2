"""Reference values that satisfy the coverage rule (spec.coverage) for one evidence type, for
test stacks in staging and production whose subject is something else. Test values only: no
real guest reports them."""

from __future__ import annotations

from typing import Any

from spec import coverage
from spec.attestation import SCALAR_REFERENCE_VALUES


def complete(*evidence: str) -> dict[str, Any]:
    """Every name the default policy needs to affirm each evidence type, with test values."""
    return {
        name: 1 if name in SCALAR_REFERENCE_VALUES else [f"test-{name}"]
        for kind in evidence
        for name in coverage.required(kind)
    }
