"""`coco image ...`: build and boot-test guest images from the command line.

`add_parsers(subparsers)` registers the commands on the `coco` parser (cli/main.py);
`main()` runs them standalone (`python -m cli.image`). Library code raises images.errors;
only this module prints `error: ... / hint: ...` and picks the exit code (2 for a bad recipe or a
missing tool, 1 for a failed command, boot or measurement check), tracebacks only with --debug.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from images.errors import ImageError, InputError, RecipeError, ToolMissing
from spec.errors import report_unexpected

EXIT_INVALID = 2


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
    measurements: dict[str, Any] = json.loads((out / "measurements.json").read_text())
    result = boot.boot(out / "disk.raw", timeout=args.timeout)
    if not result.booted:
        reason = result.failure or "no marker on the serial console"
        raise BootFailed(
            f"{out / 'disk.raw'} did not boot: {reason}",
            hint="rerun with --debug; the console log ends with:\n"
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
    """Register `image build`, `image boot` and `image resolve` on the `coco` command's
    subparsers."""
    image = subparsers.add_parser("image", help="build and boot-test guest images")
    sub = image.add_subparsers(dest="image_command", required=True)
    build = sub.add_parser("build", help="build a recipe: disk images and measurements.json")
    build.add_argument("recipe", help="a recipe name in images/recipes/ or a path to a .toml")
    build.add_argument("--out", required=True, help="output directory")
    build.add_argument(
        "--json", action="store_true", help="print measurements.json on stdout instead of a summary"
    )
    build.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print every command"
    )
    build.set_defaults(func=cmd_build, image_main=True)
    boot = sub.add_parser("boot", help="boot a built image in QEMU and check PCR 4 and 11")
    boot.add_argument("dir", help="a directory `coco image build` wrote")
    boot.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    boot.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print every command"
    )
    boot.set_defaults(func=cmd_boot, image_main=True)
    resolve = sub.add_parser(
        "resolve", help="print the digest an image tag points to now (for pinning OCI payloads)"
    )
    resolve.add_argument("reference", help="registry/repository:tag")
    resolve.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print every command"
    )
    resolve.set_defaults(func=cmd_resolve, image_main=True)
    measure = sub.add_parser("measure", help="compute launch measurements of firmware files")
    measure_sub = measure.add_subparsers(dest="measure_tee", required=True)
    tdx = measure_sub.add_parser(
        "tdx",
        help="MRTD of a TDVF firmware (and RTMR2 of a direct boot): JSON with mrtd and the KBS "
        "reference values mr_td (and rtmr_2)",
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
    tdx.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print every command"
    )
    tdx.set_defaults(func=cmd_measure_tdx, image_main=True)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed `coco image ...` command and turn image errors into exit codes."""
    try:
        return int(args.func(args))
    except (RecipeError, InputError, ToolMissing) as exc:
        _print_error(exc)
        return EXIT_INVALID
    except ImageError as exc:
        _print_error(exc)
        return 1
    except Exception:
        return report_unexpected(args.debug)


def _print_error(exc: ImageError) -> None:
    print(f"error: {exc}", file=sys.stderr)
    if exc.hint:
        print(f"  hint: {exc.hint}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coco", description="Guest images for coco-stack.")
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
