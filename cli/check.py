"""`coco check STACK`: validate a stack and summarise what it creates (text or JSON), and with
`--live` ask each cloud the stack uses (components.preflight).

The JSON document is cli/schemas/check.schema.json; an invalid stack raises SpecError, which
cli.main reports with every issue (exit code 2). A cloud API that fails or does not answer
during `--live` is Unreachable (exit code 3).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spec import versions
from spec.errors import ConfigIssue, ExitCode, Unreachable

if TYPE_CHECKING:
    from spec.model import Spec


def _summary(spec: Spec, path: Path) -> list[str]:
    from spec import catalogue

    c = spec.cluster
    if c.provider == "existing":
        how = (
            "kubeconfig secret"
            if c.kubeconfig
            else (f"context {c.context}" if c.context else "the current kube context")
        )
        cluster = f"existing cluster via {how}"
    else:
        where = c.location or c.region or c.zone or c.server
        cluster = (
            f"{c.provider} cluster {c.name or spec.stack!r} in {where}, Kubernetes "
            f"{c.kubernetes_version}"
        )
    lines = [
        f"stack {spec.stack} ({spec.environment}) from {path}: valid",
        f"cluster: {cluster}",
        f"node pools: {len(spec.node_pools)}",
    ]
    for pool in spec.node_pools:
        offering = catalogue.find(pool.provider or "", pool.tee, pool.mode or "")
        rc = offering.runtime_class if offering else None
        where = pool.instance_type or (
            f"{len(pool.hosts)} host(s)" if pool.hosts else f"nodes matching {pool.node_selector}"
        )
        lines.append(
            f"  - {pool.name}: {pool.tee} {pool.mode} on {pool.provider}, {where}, "
            f"runtimeClass {rc or '(none: pods use the node runtime)'}"
        )
    image = _image(spec)
    if image is not None:
        parts = []
        if image["recipe"] is not None:
            parts.append(f"recipe {image['recipe']}, built during `pulumi up`")
        if image["podVms"] is not None:
            boot = image["podvmImage"] or "the recipe's image"
            scratch = image["scratchSpaceGib"]
            parts.append(
                f"pod VMs boot {boot}, "
                + (f"encrypted scratch space {scratch} GiB" if scratch else "no scratch space")
            )
        lines.append("image: " + "; ".join(parts))
    k = spec.kbs
    if k.enabled:
        lines.append(
            f"kbs: Trustee {versions.TRUSTEE_VERSION} in namespace {k.namespace}, expose "
            f"{k.expose}, {len(k.resources)} resource(s), resource policy {k.resource_policy}"
        )
    else:
        lines.append("kbs: disabled")
    return lines


def _image(spec: Spec) -> dict[str, Any] | None:
    """The guest image the stack builds and what cloud pod VMs boot (None when neither): the
    same decisions components.stack makes (podvmImage wins over the recipe's image; the scratch
    space of spec.rules.image)."""
    from spec.rules.image import cloud_peer_pods, scratch_space_gib

    image = spec.image
    clouds = cloud_peer_pods(list(spec.node_pools))
    if image.recipe is None and not clouds:
        return None
    return {
        "recipe": image.recipe,
        "podVms": clouds or None,
        "podvmImage": image.podvm_image,
        "scratchSpaceGib": scratch_space_gib(image, list(spec.node_pools)) if clouds else None,
    }


def _check_document(spec: Spec, path: Path, warnings: list[ConfigIssue]) -> dict[str, Any]:
    """`coco check -o json` (cli/schemas/check.schema.json): the summary as data."""
    from cli import output
    from spec import catalogue, coverage

    c = spec.cluster
    pools = []
    for pool in spec.node_pools:
        offering = catalogue.find(pool.provider or "", pool.tee, pool.mode or "")
        pools.append(
            {
                "name": pool.name,
                "tee": pool.tee,
                "mode": pool.mode,
                "provider": pool.provider,
                "instanceType": pool.instance_type,
                "hosts": len(pool.hosts or []),
                "nodeSelector": dict(sorted((pool.node_selector or {}).items())),
                "runtimeClass": offering.runtime_class if offering else None,
            }
        )
    attestation = []
    if spec.kbs.enabled and spec.kbs.attestation_policy == "default":
        for pool in spec.node_pools:
            evidence = coverage.evidence_of(pool)
            if evidence is not None:
                found = coverage.gap(pool, spec.kbs)
                attestation.append(
                    {
                        "pool": pool.name,
                        "evidence": evidence,
                        "required": list(coverage.required(evidence)),
                        "missing": list(found.missing) if found else [],
                    }
                )
    k = spec.kbs
    return {
        "stack": spec.stack,
        "environment": spec.environment,
        "file": str(path),
        "valid": True,
        "cluster": {
            "provider": c.provider,
            "name": c.name,
            "where": c.location or c.region or c.zone or c.server,
            "kubernetesVersion": c.kubernetes_version,
        },
        "nodePools": pools,
        "image": _image(spec),
        "kbs": {
            "enabled": k.enabled,
            "namespace": k.namespace if k.enabled else None,
            "expose": k.expose if k.enabled else None,
            "resources": len(k.resources) if k.enabled else 0,
            "resourcePolicy": k.resource_policy if k.enabled else None,
            "trusteeVersion": versions.TRUSTEE_VERSION,
        },
        "attestation": attestation,
        "warnings": [output.issue(i) for i in warnings],
        "live": None,
    }


def run(args: argparse.Namespace) -> int:
    """`coco check STACK [--live] [-o json]`."""
    from cli import output
    from spec import extras, stackfile, support
    from spec.validate import validate

    sf = stackfile.load(args.stack)
    spec, warnings = validate(
        sf.config, stack=sf.name, secure_paths=sf.secure_paths, base_dir=str(sf.project_dir)
    )
    found = [*warnings, *support.gaps(spec)]
    extras.check(spec)
    if args.output == "json":
        doc = _check_document(spec, sf.path, found)
        if args.live:
            live, errors = _live(spec, json_mode=True)
            if errors:
                return output.error(
                    "check",
                    True,
                    f"live check: {len(errors)} error(s) in stack {spec.stack}",
                    issues=errors,
                )
            doc["live"] = live
        output.emit("check", doc)
        return ExitCode.OK
    for line in [*_summary(spec, sf.path), *_coverage_lines(spec)]:
        print(line)
    for issue in found:
        print(issue.render(), file=sys.stderr)
    if args.live:
        _, errors = _live(spec, json_mode=False)
        return ExitCode.INVALID if errors else ExitCode.OK
    return ExitCode.OK


def _coverage_lines(spec: Spec) -> list[str]:
    """Per pool with evidence: the reference values the default attestation policy needs and
    whether the stack has them (spec.coverage; the gaps are also warnings or errors)."""
    from spec import coverage

    if not spec.kbs.enabled or spec.kbs.attestation_policy != "default":
        return []
    lines = []
    for pool in spec.node_pools:
        evidence = coverage.evidence_of(pool)
        if evidence is None:
            continue
        found = coverage.gap(pool, spec.kbs)
        needed = coverage.required(evidence)
        state = (
            f"missing {', '.join(found.missing)}"
            if found
            else ("complete: " + ", ".join(needed) if needed else "none needed")
        )
        lines.append(f"  reference values for {pool.name} ({evidence} evidence): {state}")
    return ["attestation (default policy):", *lines] if lines else []


def _live(spec: Spec, json_mode: bool) -> tuple[dict[str, Any], list[ConfigIssue]]:
    """Ask the clouds (components.preflight); print in text mode. The JSON `live` field and
    the errors. A cloud API that fails or cannot be reached is Unreachable (exit code 3)."""
    from cli import output
    from components import preflight  # the cloud SDKs load only for --live
    from spec import extras

    if not extras.clouds_of(spec):
        if not json_mode:
            print("live check: the stack uses no cloud; nothing to ask")
        return {"checked": [], "skipped": [], "issues": []}, []
    try:
        result = preflight.run(spec)
    except Exception as exc:
        if output.from_outside(exc):
            raise Unreachable(
                f"live check: the cloud API failed: {type(exc).__name__}: {exc}",
                "check the network and the cloud's status; the offline checks passed",
            ) from exc
        raise
    errors = [i for i in result.issues if i.severity == "error"]
    live = {
        "checked": list(result.checked),
        "skipped": [{"cloud": s.cloud, "message": str(s), "hint": s.hint} for s in result.skipped],
        "issues": [output.issue(i) for i in result.issues],
    }
    if json_mode:
        return live, errors
    for skipped in result.skipped:
        said = "only the offline checks ran"
        print(
            f"live check skipped for {skipped}"
            + ("" if said in str(skipped) else f"; {said}")
            + (f"\n  hint: {skipped.hint}" if skipped.hint else ""),
            file=sys.stderr,
        )
    for issue in result.issues:
        print(issue.render(), file=sys.stderr)
    if result.checked:
        print(
            f"live check ({', '.join(result.checked)}): "
            + (f"{len(errors)} error(s)" if errors else "every size is offered where asked")
        )
    return live, errors
