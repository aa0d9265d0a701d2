"""The `coco` command: check and render stacks without the Pulumi CLI.

Library code raises typed errors (spec.errors); only the CLI prints them (cli.output), and the
exit code is the one the error's class carries (spec.errors.ExitCode: 0 ok, 1 changes found
with --exit-code, 2 invalid input or usage, 3 something unreachable, 4 a failure or anything
unexpected). Tracebacks only with --debug. docs/cli.md is the reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from spec import versions
from spec.errors import ExitCode, report_unexpected

if TYPE_CHECKING:
    from spec.model import KataGuest

# `coco --help` imports only argparse, spec.versions and spec.errors: the spec model (pydantic),
# the KBS client (pyjwt, cryptography), Pulumi and argcomplete load inside the command that
# needs them.

EXIT_INVALID = ExitCode.INVALID  # kept for callers; the codes are spec.errors.ExitCode


def cmd_check(args: argparse.Namespace) -> int:
    from cli import check

    return check.run(args)


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download what `pulumi up` would fetch for the stack into the image cache (and the Go
    module cache): the pinned kata release a `kataGuest` without firmware and kernel is measured
    from, and every payload source the build of coco:image.recipe downloads (release archives,
    the Go modules of each Go group, URL files, OCI layers), each checked against its pin. A line
    per item on stdout (what, size, cached or downloaded), progress on stderr; the measurement
    `pulumi up` will give the KBS. The only command besides `pulumi up` that touches the network
    for this."""
    from spec import stackfile
    from spec.validate import validate

    sf = stackfile.load(args.stack)
    spec, _ = validate(
        sf.config, stack=sf.name, secure_paths=sf.secure_paths, base_dir=str(sf.project_dir)
    )
    guest = spec.kbs.kata_guest if spec.kbs.enabled else None
    if guest is None and spec.image.recipe is None:
        print(f"stack {sf.name}: nothing to fetch (no coco:kbs.kataGuest, no coco:image.recipe)")
        return 0

    def say(line: str) -> None:
        print(f"coco fetch: {line}", file=sys.stderr, flush=True)

    if guest is not None:
        _fetch_kata_guest(guest, sf.project_dir, say)
    if spec.image.recipe is not None:
        from images import prefetch
        from images import recipe as recipes

        recipe = recipes.load(spec.image.recipe)  # as the GuestImage component loads it
        say(f"coco:image.recipe: {recipe.name} ({recipe.path})")
        fetched = prefetch.recipe_sources(recipe, say)
        if not fetched:
            print(f"recipe {recipe.name}: nothing to download besides Debian packages")
        for item in fetched:
            print(f"recipe {recipe.name} {item.summary()}")
    return 0


def _fetch_kata_guest(guest: KataGuest, project_dir: Path, say: Callable[[str], None]) -> None:
    """coco:kbs.kataGuest: the pinned kata release (when the guest takes firmware or kernel from
    it), downloaded and measured as `pulumi up` does."""
    from images import kata as kata_measure
    from images import release
    from images.prefetch import human_size, identity

    path = release.cached_path(versions.KATA_STATIC)
    before = identity(path)
    say("coco:kbs.kataGuest: measuring (downloads the pinned kata release when it needs it)")
    measured = kata_measure.measure(guest, project_dir)
    if measured.release:
        after = identity(path)
        size = human_size(path.stat().st_size) if after else "its members, extracted earlier"
        state = "downloaded" if after is not None and after != before else "cached"
        print(
            f"kata release {measured.release['url']} sha256 {measured.release['sha256']}, "
            f"{size}, {state}"
        )
    for vcpus, digest in measured.measurements:
        print(f"snp_launch_measurement ({vcpus} vCPUs): {digest}")


def cmd_render(args: argparse.Namespace) -> int:
    """`coco render STACK`: a summary only (nothing written); `--out DIR`: the directory form;
    `--out -`: one JSON document on stdout (cli/schemas/render-document.schema.json), progress
    on stderr; `-o json`: the summary as JSON (cli/schemas/render.schema.json)."""
    from cli import output, render  # render imports Pulumi: only when rendering
    from spec import stackfile

    if args.diff is not None:
        return _render_diff(args)
    to_stdout = args.out == "-"
    if to_stdout and args.output == "json":
        args.parser.error("--out - already prints one JSON document; drop -o json")
    started = time.perf_counter()
    sf = stackfile.load(args.stack)
    if args.out and not to_stdout:
        render.check_out(Path(args.out), protected={sf.project_dir: "the stack's project"})
    result = render.run(
        sf.config,
        stack=sf.name,
        secure_paths=sf.secure_paths,
        project_dir=sf.project_dir,
        progress=lambda line: print(f"render: {line}", file=sys.stderr, flush=True),
    )
    for warning in result.warnings:
        print(warning, file=sys.stderr)
    if to_stdout:
        document = render.stdout_document(result)
        sys.stdout.write(render.dumps_json(document))
        count, manifests = len(document["resources"]), len(document["manifests"])
    elif args.out is not None:
        count, manifests = render.write(result, Path(args.out))
    else:
        count = len(result.document()["resources"])
        manifests = len(render.manifest_files(result))
    seconds = time.perf_counter() - started
    if args.output == "json":
        output.emit(
            "render",
            {
                "stack": sf.name,
                "resources": count,
                "manifests": manifests,
                "out": args.out,
                "warnings": list(result.warnings),
                "notice": render.NOTICE,
            },
        )
        return ExitCode.OK
    where = (
        "stdout" if to_stdout else (args.out if args.out else "nothing written (--out DIR writes)")
    )
    print(
        f"rendered stack {sf.name}: {count} resources, {manifests} Kubernetes manifests -> "
        f"{where} ({seconds:.1f}s)",
        file=sys.stderr if to_stdout else sys.stdout,
    )
    print(render.NOTICE, file=sys.stderr if to_stdout else sys.stdout)
    return ExitCode.OK


def _render_diff(args: argparse.Namespace) -> int:
    """`coco render STACK --diff REF`: the stack at REF and in the working tree, compared; the
    `coco diff` Markdown (or JSON) on stdout, everything else on stderr."""
    import tempfile

    from cli import diff, diff_cli, output, render
    from spec import stackfile

    if args.out == "-":
        args.parser.error("with --diff, --out names the directory of the head render")
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
    if args.output == "json":
        output.emit("diff", diff_cli.to_json(changes))
    else:
        sys.stdout.write(diff.markdown(changes))
        print(render.NOTICE, file=sys.stderr)
    return ExitCode.CHANGES if args.exit_code and not changes.empty else ExitCode.OK


EPILOG = """\
exit codes:
{codes}

Global options (--debug, -o/--output, -s/--stack) work before or after the command.
Under --output json, stdout holds one JSON document (schemas: docs/cli.md); on failure stdout
is empty and the last line of stderr is a JSON error object.

examples:
  coco check dev                      validate the dev stack, summarise what it creates
  coco check -s dev -o json | jq .nodePools
  coco render dev --out out/dev       resources.json and manifests/ under out/dev
  coco diff out/base out/head --exit-code
  coco completion bash > /etc/bash_completion.d/coco
"""


def build_parser() -> argparse.ArgumentParser:
    from cli import options
    from spec.errors import EXIT_CODES

    parser = argparse.ArgumentParser(
        prog="coco",
        description="Check and render coco-stack Pulumi stacks without the Pulumi CLI.",
        epilog=EPILOG.format(codes="\n".join(f"  {int(c)}  {what}" for c, what in EXIT_CODES)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_common(parser, top=True)
    parser.add_argument(
        "--version", action=_Version, nargs=0, help="show coco-stack's and CoCo's versions"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = options.command(
        sub,
        "check",
        help="validate a stack and summarise what it creates",
        stack="required",
        json=True,
        examples="""
  coco check dev
  coco check stacks/Pulumi.prod.yaml --live     also ask the clouds (their credentials)
  coco check -s dev -o json | jq '.nodePools[].runtimeClass'
""",
    )
    check.add_argument(
        "--live",
        action="store_true",
        help="also ask each cloud the stack uses (with the environment's credentials) whether "
        "its sizes are offered where the stack asks for them",
    )
    check.set_defaults(func=cmd_check)

    fetch = options.command(
        sub,
        "fetch",
        help="download what `pulumi up` would fetch for a stack into the caches: the kata release "
        "of kataGuest (and the measurement it pins) and every payload source the build of "
        "coco:image.recipe downloads; check and render never download",
        stack="required",
        examples="""
  coco fetch dev
  coco fetch gcp-tdx        kata-static 4.0.0 and the Go modules of tools/go/caa for podvm
""",
    )
    fetch.set_defaults(func=cmd_fetch)

    render = options.command(
        sub,
        "render",
        help="run the program under mocks and show what it registers (not `pulumi preview`)",
        stack="required",
        json=True,
        examples="""
  coco render dev                       summary only, nothing written
  coco render dev --out out/dev         out/dev/resources.json and out/dev/manifests/
  coco render dev --out - | jq '.outputs'   one JSON document on stdout, progress on stderr
  coco render dev --diff origin/main --exit-code
""",
    )
    render.add_argument(
        "--out",
        metavar="DIR",
        help="output directory, or - for one JSON document on stdout; without it a summary "
        "only (with --diff: where the head render goes)",
    )
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

    completion = options.command(
        sub,
        "completion",
        help="print the shell completion script for bash, zsh or fish",
        examples="""
  coco completion bash > ~/.local/share/bash-completion/completions/coco
  coco completion zsh > "${fpath[1]}/_coco"
  coco completion fish > ~/.config/fish/completions/coco.fish
""",
    )
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))
    completion.set_defaults(func=cmd_completion)
    return parser


def cmd_completion(args: argparse.Namespace) -> int:
    """The script from argcomplete: it completes by asking `coco` itself (the parser is the one
    source), for bash, zsh and fish alike."""
    from argcomplete.shell_integration import shellcode

    sys.stdout.write(shellcode(["coco"], shell=args.shell))
    return ExitCode.OK


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
    import os

    from cli import options

    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # a shell asks for completions: only then load argcomplete
        import argcomplete

        argcomplete.autocomplete(parser)
    if not (sys.argv[1:] if argv is None else list(argv)):
        parser.print_help()  # bare `coco`: what it can do, not an error
        return ExitCode.OK
    args = options.finish(parser, parser.parse_args(argv))
    if not args.debug:
        # libraries' FutureWarning/DeprecationWarning (google.api_core's Python support notice,
        # the cloud SDKs' deprecated resources) are not the user's problem: keep them out of
        # our output; --debug shows them
        import warnings

        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
    from cli import output
    from spec.errors import CocoError, SpecError

    name = args.command_name
    json_mode = args.output == "json"
    if getattr(args, "image_main", False):
        from cli import image as image_cli

        return image_cli.run_command(args)
    try:
        return int(args.func(args))
    except SpecError as exc:
        return output.error(
            name,
            json_mode,
            f"{len(exc.issues)} error(s) in stack {args.stack}",
            code=exc.exit_code,
            issues=exc.issues,
            warnings=exc.warnings,
        )
    except CocoError as exc:
        return output.error(name, json_mode, str(exc), exc.hint, exc.exit_code)
    except Exception as exc:
        if output.from_outside(exc):
            return output.error(
                name, json_mode, f"{type(exc).__name__}: {exc}", code=ExitCode.UNREACHABLE
            )
        if json_mode and not args.debug:
            return output.error(
                name,
                json_mode,
                f"unexpected failure: {exc!r} (rerun with --debug)",
                code=ExitCode.FAILED,
            )
        return report_unexpected(args.debug)


if __name__ == "__main__":
    sys.exit(main())
