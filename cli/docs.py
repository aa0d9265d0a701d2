"""Generate the README's config reference and support matrix from the spec and the catalogue.

Each setting is declared once (spec.model) and each offering once (spec.catalogue);
the README shows them through this module, and a test fails when the README is stale:
    python -m cli.docs --write
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr

from spec import catalogue
from spec import model as spec
from spec.errors import ExitCode

README = Path(__file__).resolve().parent.parent / "README.md"
# Which issue brings the components for each provider (see `issues`); bare metal on existing
# nodes renders today.
_STATUS = {
    "azure": "AKS created or attached; docs/azure.md",
    "aws": "EKS created or attached; docs/aws.md",
    "gcp": "GKE created or attached; docs/gcp.md",
    "ibmcloud": "peer pods in an existing VPC (components.ibmcloud; docs/secure-execution.md)",
    "baremetal": "existing nodes (nodeSelector), or your hosts over SSH: host check, then k3s "
    "join or node labels; docs/bare-metal.md",
}


def _type_name(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _type_name(args[0])
    if origin in (Union, UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is Literal:
        return " \\| ".join(str(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "map of strings"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mapping"
    return {SecretStr: "secret string", str: "string", int: "integer", bool: "boolean"}.get(
        tp, str(tp)
    )


def _model_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{field.alias or name}"
        default = (
            "required"
            if field.is_required()
            else f"`{json.dumps(field.get_default(call_default_factory=True))}`"
        )
        rows.append(
            f"| `{key}` | {_type_name(field.annotation)} | {default} | {field.description or ''} |"
        )
        inner = _nested(field.annotation)
        if inner is not None:
            suffix = "[]" if "list[" in str(field.annotation) else ""
            rows += _model_rows(inner, f"{key}{suffix}")
    return rows


def _nested(annotation: Any) -> type[BaseModel] | None:
    for arg in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        for inner in getattr(arg, "__args__", ()):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def config_reference() -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for section, annotation in spec.SECTIONS.items():
        lines.append(f"| `coco:{section}` | | | **{spec.SECTION_DOCS[section]}** |")
        if section == "environment":
            lines[-1] = (
                f"| `coco:environment` | {_type_name(annotation)} | "
                f'`"{spec.DEFAULTS[section]}"` | {spec.SECTION_DOCS[section]} |'
            )
            continue
        model = _nested(annotation)
        if model is not None:
            prefix = f"coco:{section}" + ("[]" if section == "nodePools" else "")
            lines += _model_rows(model, prefix)
    return "\n".join(lines)


def support_matrix() -> str:
    lines = [
        "| provider | TEE | mode | instance families (default) | RuntimeClass | evidence | "
        "initdata bound by | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in sorted(catalogue.OFFERINGS, key=lambda o: o.key):
        families = ", ".join(o.families) + (f" ({o.default_size})" if o.default_size else "")
        lines.append(
            f"| {o.provider} | {o.tee} | {o.mode} | {families or 'your hosts'} | "
            f"{o.runtime_class or 'none (runc on CVM nodes)'} | {o.evidence or '-'} | "
            f"{o.initdata_binding or '-'} | {_STATUS[o.provider]} |"
        )
    return "\n".join(lines)


def _replace(text: str, marker: str, body: str) -> str:
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no {start} ... {end} block")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def updated_readme(text: str) -> str:
    text = _replace(text, "config-reference", config_reference())
    return _replace(text, "support-matrix", support_matrix())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args()
    text = README.read_text(encoding="utf-8")
    new = updated_readme(text)
    if args.write:
        README.write_text(new, encoding="utf-8")
    elif new != text:
        # like `coco diff --exit-code`: 1 means "changes found" (spec.errors.ExitCode)
        print("README.md is stale: run python -m cli.docs --write", file=sys.stderr)
        return ExitCode.CHANGES
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
