"""`coco image ...`: build and boot-test guest images from the command line.

`add_parsers(subparsers)` registers the commands on the `coco` parser (cli/main.py);
`main()` runs them standalone (`python -m cli.image`). Library code raises images.errors;
only this module prints `error: ... / hint: ...`; the exit code is the error's own
(images.errors: 2 for a bad recipe, input or a missing tool, 3 for a registry or download that
failed, 4 for a failed command, boot or measurement check), tracebacks only with --debug.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from images.errors import ImageError, InputError
from spec.errors import ExitCode, report_unexpected

if TYPE_CHECKING:
    from images.recipe import BootCheck

EXIT_INVALID = ExitCode.INVALID


def cmd_build(args: argparse.Namespace) -> int:
    from images import build, recipe

    build.check_out(Path(args.out))  # before the recipe is read or anything built
    spec = recipe.load(args.recipe)
    result = build.build_image(spec, Path(args.out), debug=args.debug)
    if args.json:
        print(json.dumps(result.measurements, sort_keys=True))
        return 0
    refs = result.measurements["reference_values"]
    print(f"built {spec.name} -> {args.out}")
    for name, digest in sorted(result.measurements["artifacts"].items()):
        print(f"  {name}: sha256 {digest['sha256']} ({digest['size']} bytes)")
    print(f"  dm-verity root hash: {result.measurements['dm_verity']['root_hash']}")
    for name, values in sorted(refs.items()):
        print(f"  {name}: {', '.join(values)}")
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    from images import boot
    from images.errors import BootFailed, MeasurementMismatch
    from images.run import BOOT_TOOLS, check_tools, configure

    configure(debug=args.debug, source_date_epoch=0)
    out = Path(args.dir)
    if not (out / "measurements.json").is_file() or not (out / "disk.raw").is_file():
        raise InputError(
            f"{out} holds no built image (measurements.json and disk.raw)",
            hint=f"build one first: coco image build RECIPE --out {out}",
        )
    check_tools(BOOT_TOOLS)
    from cli.userfiles import read_text

    try:
        measurements: dict[str, Any] = json.loads(
            read_text(out / "measurements.json", "measurements file", InputError)
        )
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{out / 'measurements.json'}: not JSON ({exc})",
            hint=f"build the image again: coco image build RECIPE --out {out}",
        ) from None
    if args.timeout is not None and not 0 < args.timeout <= 86400:
        raise InputError(f"--timeout {args.timeout:g}: not a number of seconds in (0, 86400]")
    spec = boot_check(measurements, args.recipe, out)
    waited = spec.timeout if args.timeout is None else args.timeout
    print(
        f"booting {out / 'disk.raw'} under QEMU (TCG): waiting up to {waited:.0f} s for "
        f"{spec.describe()}",
        file=sys.stderr,
        flush=True,
    )
    result = boot.check(
        out / "disk.raw",
        spec,
        timeout=args.timeout,
        progress=lambda line: print(f"coco image boot: {line}", file=sys.stderr, flush=True),
    )
    if not result.booted:
        reason = result.failure or (
            "no marker on the serial console"
            if spec.ready == "marker"
            else f"not {spec.describe()} within {waited:.0f} s"
        )
        raise BootFailed(
            f"{out / 'disk.raw'} did not boot: {reason}",
            hint="rerun with --debug (or a longer --timeout); the console log ends with:\n"
            + "\n".join(result.console.splitlines()[-10:]),
        )
    print(f"booted {out / 'disk.raw'} in {result.seconds:.1f}s")
    mismatches = []
    for pcr, predicted in sorted(measurements["tpm"]["pcrs"].items(), key=lambda i: int(i[0])):
        actual = result.pcrs.get(pcr, "(not reported)")
        print(f"  PCR {pcr}: predicted {predicted} booted {actual}")
        if actual != predicted:
            mismatches.append(pcr)
    if mismatches:
        raise MeasurementMismatch(f"PCR {', '.join(mismatches)} differ from the prediction")
    return 0


def boot_check(measurements: dict[str, Any], recipe_arg: str | None, out: Path) -> BootCheck:
    """The [boot] check of the recipe that built `out`: the recipe `--recipe` names (which must
    be the one measurements.json names), else the recipe of that name in images/recipes/, else
    the default (the image marker), said on stderr."""
    import re

    from images import recipe

    info = measurements.get("recipe")
    built = info.get("name") if isinstance(info, dict) else None
    # a recipe name (images.recipe.parse) and nothing else reaches a path
    built = built if isinstance(built, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]*", built) else ""
    if recipe_arg is not None:
        spec = recipe.load(recipe_arg)
        if built and spec.name != built:
            raise InputError(
                f"--recipe {recipe_arg}: recipe {spec.name!r}, but {out} was built from "
                f"recipe {built!r}",
                hint="name the recipe the image was built from, or leave --recipe out",
            )
        return spec.boot
    if built and (recipe.RECIPES_DIR / f"{built}.toml").is_file():
        return recipe.load(built).boot
    print(
        f"coco image boot: recipe {built or '(unnamed)'} is not in {recipe.RECIPES_DIR}: "
        "checking for the image marker (--recipe PATH uses its [boot] section)",
        file=sys.stderr,
    )
    return recipe.BootCheck()


def cmd_resolve(args: argparse.Namespace) -> int:
    """Print REFERENCE@sha256:... for a tag: what a recipe or spec/versions.py pins."""
    from images import oci

    try:
        ref = oci.Reference.parse(args.reference)
    except ValueError as exc:
        raise InputError(str(exc), hint="for example ghcr.io/owner/name:tag") from exc
    digest = oci.Client().resolve(ref)
    print(f"{oci.Reference(ref.registry, ref.repository, ref.tag, '')}@{digest}")
    return 0


class LockOutdated(ImageError):
    """`coco image lock --check`: the tags point elsewhere than the committed lock says (exit 1,
    "changes found", as diff --exit-code)."""

    exit_code = ExitCode.CHANGES


def cmd_lock(args: argparse.Namespace) -> int:
    """Resolve the tags a recipe follows and write (or, with --check, compare) its lock file."""
    from images import lock, recipe

    spec = recipe.load(args.recipe)
    entries = lock.resolve(spec)
    path = lock.lock_path(spec)
    if args.check:
        current = path.read_text() if path.is_file() else ""
        wanted = lock.render(spec, entries) if entries else ""
        if current != wanted:
            old = {e.image: e.digest for e in lock.read(spec).values()} if current else {}
            moved = [e.image for e in entries if old.get(e.image) != e.digest]
            stale = sorted(set(old) - {e.image for e in entries})
            raise LockOutdated(
                f"{path.name} is out of date: "
                + ", ".join([*(f"{m} moved or is new" for m in moved),
                             *(f"{s} is no longer in the recipe" for s in stale)]),
                hint=f"run: coco image lock {args.recipe} (and commit {path.name})",
            )
        print(f"{path.name} is up to date" if entries else f"{spec.name} follows no tag")
        return 0
    written = lock.write(spec, entries)
    if written is None:
        print(f"{spec.name} follows no tag: nothing to lock")
        return 0
    print(f"locked {len(entries)} tag(s) of {spec.name} -> {written}")
    for entry in entries:
        print(f"  {entry.image}@{entry.digest}")
    return 0


def cmd_measure_tdx(args: argparse.Namespace) -> int:
    """Print MRTD of a TDVF firmware file (and RTMR2 of a direct boot when asked) as JSON."""
    from images import tdx

    result = tdx.measure_mrtd(args.firmware, page_order=args.page_order).to_json()
    if args.cmdline is not None:
        initrd = None
        if args.initrd:
            try:
                initrd = Path(args.initrd).read_bytes()
            except OSError as exc:
                raise InputError(f"{args.initrd}: cannot read initrd ({exc.strerror})") from None
        result["rtmr2"] = tdx.predict_rtmr2_direct_boot(
            args.cmdline, initrd, layout=args.load_options
        ).to_json()
    result["not_predicted"] = dict(sorted(tdx.NOT_PREDICTED.items()))
    result["reference_values"] = {
        "mr_td": [result["mrtd"]],
        **({"rtmr_2": [result["rtmr2"]["value"]]} if "rtmr2" in result else {}),
    }
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def add_parsers(subparsers: Any) -> None:
    """Register `image build`, `image boot`, `image resolve`, `image lock` and `image measure
    tdx` on the `coco` command's subparsers (with the common options: --debug prints every
    command)."""
    from cli import options

    image = options.command(
        subparsers,
        "image",
        help="build and boot-test guest images",
        examples="""
  coco image build podvm --out out/podvm
  coco image boot out/podvm
""",
    )
    sub = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND")
    build = options.command(
        sub,
        "image build",
        help="build a recipe: disk images and measurements.json",
        examples="""
  coco image build podvm --out out/podvm
  coco image build images/recipes/podvm.toml --out out/podvm --json > measurements.json
""",
    )
    build.add_argument("recipe", help="a recipe name in images/recipes/ or a path to a .toml")
    build.add_argument("--out", required=True, help="output directory")
    build.add_argument(
        "--json", action="store_true", help="print measurements.json on stdout instead of a summary"
    )
    build.set_defaults(func=cmd_build, image_main=True)
    boot = options.command(
        sub,
        "image boot",
        help="boot a built image in QEMU until it is booted as its recipe's [boot] says, and "
        "check PCR 4 and 11",
        examples="""
  coco image boot out/minimal
  coco image boot out/podvm                     the forwarder answers TLS on 15150 (about 3 min)
  coco image boot out/custom --recipe my.toml --timeout 1200
""",
    )
    boot.add_argument("dir", help="a directory `coco image build` wrote")
    boot.add_argument(
        "--recipe",
        help="the recipe the image was built from (a name or .toml path), for its [boot] section "
        "(default: the recipe of the name measurements.json gives, in images/recipes/)",
    )
    boot.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait (default: the recipe's [boot] timeout, 300 unless it says)",
    )
    boot.set_defaults(func=cmd_boot, image_main=True)
    resolve = options.command(
        sub,
        "image resolve",
        help="print the digest an image tag points to now (for pinning OCI payloads)",
        examples="  coco image resolve ghcr.io/confidential-containers/guest-components:v0.16.0",
    )
    resolve.add_argument("reference", help="registry/repository:tag")
    resolve.set_defaults(func=cmd_resolve, image_main=True)
    lock = options.command(
        sub,
        "image lock",
        help="resolve the registry tags a recipe's [[payload.oci]] entries follow to digests "
        "and write <recipe>.lock.json next to it (the build needs it and never resolves tags)",
        description="Resolve each registry tag the recipe's [[payload.oci]] entries follow "
        '(image = "registry/repository:tag") to its manifest digest and write '
        "<recipe stem>.lock.json next to the recipe. Needs registry access; the build needs "
        "the lock and never resolves tags. Entries pinned by digest or by a spec/versions.py "
        "pin are left alone. Commit the lock file with the recipe; re-run to follow the tags.",
        examples="""
  coco image lock podvm
  coco image lock images/recipes/podvm.toml --check   # in CI: exit 1 when a tag moved
""",
    )
    lock.add_argument("recipe", help="a recipe name in images/recipes/ or a path to a .toml")
    lock.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the lock file differs from what the tags point to now "
        "(for CI)",
    )
    lock.set_defaults(func=cmd_lock, image_main=True)
    measure = options.command(
        sub,
        "image measure",
        help="compute launch measurements of firmware files",
        examples="  coco image measure tdx --firmware OVMF.inteltdx.fd",
    )
    measure_sub = measure.add_subparsers(dest="measure_tee", required=True, metavar="TEE")
    tdx = options.command(
        measure_sub,
        "image measure tdx",
        help="MRTD of a TDVF firmware (and RTMR2 of a direct boot): JSON with mrtd and the KBS "
        "reference values mr_td (and rtmr_2)",
        examples="""
  coco image measure tdx --firmware OVMF.inteltdx.fd
  coco image measure tdx --firmware OVMF.fd --cmdline 'console=hvc0' --initrd initrd.img
""",
    )
    tdx.add_argument("--firmware", required=True, help="the TDVF file QEMU boots with -bios")
    tdx.add_argument(
        "--page-order",
        choices=("single-pass", "two-pass"),  # images.tdx.PAGE_ORDERS
        default="single-pass",
        help="single-pass: current KVM adds then extends each page (default); two-pass: older "
        "TDX stacks added every page of a section first",
    )
    tdx.add_argument(
        "--cmdline", help="the kernel command line of a direct boot (QEMU -append): predict RTMR2"
    )
    tdx.add_argument("--initrd", help="with --cmdline: the initrd of the direct boot")
    tdx.add_argument(
        "--load-options",
        choices=("initrd-prefix", "initrd-suffix"),  # images.tdx.LOAD_OPTIONS_LAYOUTS
        default="initrd-prefix",
        help="how OVMF writes initrd= into the kernel's LoadOptions: edk2-stable202508 and later "
        "put it first (default), older edk2 after the command line",
    )
    tdx.set_defaults(func=cmd_measure_tdx, image_main=True)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed `coco image ...` command and turn image errors into exit codes."""
    try:
        return int(args.func(args))
    except ImageError as exc:
        _print_error(exc)
        return int(exc.exit_code)
    except Exception as exc:
        from cli.output import from_outside

        if from_outside(exc):
            _print_error(ImageError(f"{type(exc).__name__}: {exc}"))
            return int(ExitCode.UNREACHABLE)
        return report_unexpected(args.debug)


def _print_error(exc: ImageError) -> None:
    print(f"error: {exc}", file=sys.stderr)
    if exc.hint:
        print(f"  hint: {exc.hint}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from cli import options

    parser = argparse.ArgumentParser(prog="coco", description="Guest images for coco-stack.")
    options.add_common(parser, top=True)
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return run_command(options.finish(parser, parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
