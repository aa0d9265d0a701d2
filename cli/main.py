"""The `coco` command: check and render stacks without the Pulumi CLI.

Library code raises typed errors (spec.errors); only this module prints them and picks the
exit code: 0 success, 2 invalid input (configuration, stack file), 1 anything unexpected.
Tracebacks only with --debug.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from spec import versions

if TYPE_CHECKING:
    from spec.model import Spec

# `coco --help` imports only argparse and spec.versions: the spec model (pydantic), the KBS
# client (pyjwt, cryptography) and Pulumi load inside the command that needs them.

EXIT_INVALID = 2


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
    k = spec.kbs
    if k.enabled:
        lines.append(
            f"kbs: Trustee {versions.TRUSTEE_VERSION} in namespace {k.namespace}, expose "
            f"{k.expose}, {len(k.resources)} resource(s), resource policy {k.resource_policy}"
        )
    else:
        lines.append("kbs: disabled")
    return lines


def cmd_check(args: argparse.Namespace) -> int:
    from spec import extras, stackfile, support
    from spec.validate import validate

    sf = stackfile.load(args.stack)
    spec, warnings = validate(
        sf.config, stack=sf.name, secure_paths=sf.secure_paths, base_dir=str(sf.project_dir)
    )
    for line in [*_summary(spec, sf.path), *_coverage_lines(spec)]:
        print(line)
    for issue in [*warnings, *support.gaps(spec)]:
        print(issue.render(), file=sys.stderr)
    extras.check(spec)
    if args.live:
        return _live(spec)
    return 0


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


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download what `pulumi up` would fetch for the stack (the pinned kata release a
    `kataGuest` without firmware and kernel is measured from) into the image cache, check its
    sha256, and print the measurement `pulumi up` will give the KBS. The only command besides
    `pulumi up` that touches the network for this."""
    from images import kata as kata_measure
    from spec import stackfile
    from spec.validate import validate

    sf = stackfile.load(args.stack)
    spec, _ = validate(
        sf.config, stack=sf.name, secure_paths=sf.secure_paths, base_dir=str(sf.project_dir)
    )
    guest = spec.kbs.kata_guest if spec.kbs.enabled else None
    if guest is None:
        print(f"stack {sf.name}: nothing to fetch (no coco:kbs.kataGuest)")
        return 0
    measured = kata_measure.measure(guest, sf.project_dir)
    if measured.release:
        print(f"kata release {measured.release['url']} sha256 {measured.release['sha256']}: cached")
    for vcpus, digest in measured.measurements:
        print(f"snp_launch_measurement ({vcpus} vCPUs): {digest}")
    return 0


def _live(spec: Spec) -> int:
    from components import preflight  # the cloud SDKs load only for --live
    from spec import extras

    if not extras.clouds_of(spec):
        print("live check: the stack uses no cloud; nothing to ask")
        return 0
    result = preflight.run(spec)
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
    errors = [i for i in result.issues if i.severity == "error"]
    if result.checked:
        print(
            f"live check ({', '.join(result.checked)}): "
            + (f"{len(errors)} error(s)" if errors else "every size is offered where asked")
        )
    return EXIT_INVALID if errors else 0


def cmd_render(args: argparse.Namespace) -> int:
    from cli import render  # imports Pulumi: only when rendering
    from spec import stackfile
    from spec.errors import RenderError

    if args.diff is not None:
        return _render_diff(args)
    if args.out is None:
        raise RenderError("coco render needs --out DIR", "or --diff REF to compare with a commit")
    started = time.perf_counter()
    sf = stackfile.load(args.stack)
    render.check_out(Path(args.out), protected={sf.project_dir: "the stack's project"})
    result = render.run(
        sf.config,
        stack=sf.name,
        secure_paths=sf.secure_paths,
        project_dir=sf.project_dir,
        progress=lambda line: print(f"render: {line}", file=sys.stderr, flush=True),
    )
    count, manifests = render.write(result, Path(args.out))
    for warning in result.warnings:
        print(warning, file=sys.stderr)
    print(
        f"rendered stack {sf.name}: {count} resources, {manifests} Kubernetes manifests -> "
        f"{args.out} ({time.perf_counter() - started:.1f}s)"
    )
    print(render.NOTICE)
    return 0


def _render_diff(args: argparse.Namespace) -> int:
    """`coco render STACK --diff REF`: the stack at REF and in the working tree, compared; the
    `coco diff` Markdown on stdout, everything else on stderr."""
    import tempfile

    from cli import diff, render
    from spec import stackfile

    sf = stackfile.load(args.stack)
    if args.out:
        render.check_out(Path(args.out), protected={sf.project_dir: "the stack's project"})
    with tempfile.TemporaryDirectory(prefix="coco-render-diff-") as tmp:
        base = Path(tmp) / "base"
        render.render_ref(args.stack, args.diff, base)
        head = Path(args.out) if args.out else Path(tmp) / "head"
        result = render.run(
            sf.config, stack=sf.name, secure_paths=sf.secure_paths, project_dir=sf.project_dir
        )
        render.write(result, head)
        for warning in result.warnings:
            print(warning, file=sys.stderr)
        changes = diff.diff_dirs(base, head)
    sys.stdout.write(diff.markdown(changes))
    print(render.NOTICE, file=sys.stderr)
    return 1 if args.exit_code and not changes.empty else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coco", description="Check and render coco-stack Pulumi stacks without the Pulumi CLI."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument(
        "--version", action=_Version, nargs=0, help="show coco-stack's and CoCo's versions"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate a stack and summarise what it creates")
    check.add_argument("stack", help="a stack name in stacks/ or a path to a stack YAML file")
    check.add_argument(
        "--live",
        action="store_true",
        help="also ask each cloud the stack uses (with the environment's credentials) whether "
        "its sizes are offered where the stack asks for them",
    )
    check.set_defaults(func=cmd_check)

    fetch = sub.add_parser(
        "fetch",
        help="download what `pulumi up` would fetch for a stack (the kata release of kataGuest) "
        "into the cache and print the measurement it pins; check and render never download",
    )
    fetch.add_argument("stack", help="a stack name in stacks/ or a path to a stack YAML file")
    fetch.set_defaults(func=cmd_fetch)

    render = sub.add_parser(
        "render",
        help="run the program under mocks and write what it registers (not `pulumi preview`)",
    )
    render.add_argument("stack", help="a stack name in stacks/ or a path to a stack YAML file")
    render.add_argument("--out", help="output directory (with --diff: where the head render goes)")
    render.add_argument(
        "--diff",
        metavar="REF",
        help="also render the stack at git REF and print the `coco diff` Markdown (base: REF, "
        "head: the working tree)",
    )
    render.add_argument(
        "--exit-code", action="store_true", help="with --diff: exit 1 when something changed"
    )
    render.set_defaults(func=cmd_render)

    from cli import kbs as kbs_cli

    kbs_cli.add_parsers(sub)

    from cli import diff_cli

    diff_cli.add_parsers(sub)

    from cli import preview

    preview.add_parsers(sub)

    from cli import image as image_cli

    image_cli.add_parsers(sub)
    return parser


def _kbs_errors() -> tuple[type[Exception], ...]:
    """KbsClientError when the KBS client was loaded (only `coco kbs` loads it, with pyjwt):
    an error of a module never imported cannot have been raised."""
    module = sys.modules.get("cli.kbs_client")
    return (module.KbsClientError,) if module else ()


def _invalid(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    hint = getattr(exc, "hint", "")
    if hint:
        print(f"  hint: {hint}", file=sys.stderr)
    return EXIT_INVALID


class _Version(argparse.Action):
    """`--version`: coco-stack's own version (package metadata, read only when asked) and the
    CoCo release it pins."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib import metadata

        try:
            ours = metadata.version("coco-stack")
        except metadata.PackageNotFoundError:
            ours = "unknown (not installed)"
        print(
            f"coco-stack {ours} (CoCo {versions.COCO_RELEASE}, Trustee {versions.TRUSTEE_VERSION})"
        )
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else list(argv)):
        parser.print_help()  # bare `coco`: what it can do, not an error
        return 0
    args = parser.parse_args(argv)
    if not args.debug:
        # libraries' FutureWarning/DeprecationWarning (google.api_core's Python support notice,
        # the cloud SDKs' deprecated resources) are not the user's problem: keep them out of
        # our output; --debug shows them
        import warnings

        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
    from spec.errors import (
        CocoError,
        NotYetSupported,
        RenderError,
        SpecError,
        StackFileError,
        report_unexpected,
    )
    from spec.extras import MissingExtra

    if getattr(args, "image_main", False):
        from cli import image as image_cli

        return image_cli.run_command(args)
    try:
        return int(args.func(args))
    except SpecError as exc:
        for issue in exc.issues:
            print(issue.render(), file=sys.stderr)
        for issue in exc.warnings:
            print(issue.render(), file=sys.stderr)
        print(f"{len(exc.issues)} error(s) in stack {args.stack}", file=sys.stderr)
        return EXIT_INVALID
    except (StackFileError, NotYetSupported, RenderError, MissingExtra) as exc:
        return _invalid(exc)
    except CocoError as exc:
        if isinstance(exc, _kbs_errors()):
            code = _invalid(exc)
            return int(getattr(exc, "exit_code", code))  # KbsUnreachable: 3
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 1
    except Exception:
        return report_unexpected(args.debug)


if __name__ == "__main__":
    sys.exit(main())
