"""`coco kbs ...` (admin calls over the KBS admin API) and `coco initdata STACK`.

Wire into cli.main.build_parser with `kbs_cli.add_parsers(sub)`. The connection comes
from flags or the environment: --url/COCO_KBS_URL, --cacert/COCO_KBS_CACERT (a PEM file, from
`pulumi stack output kbsCaCert`), --token-file/COCO_KBS_TOKEN_FILE (from
`pulumi stack output kbsAdminToken --show-secrets`). Errors are typed (CocoError) for the CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, cast

from components import initdata
from spec.errors import StackFileError

if TYPE_CHECKING:
    from cli.kbs_client import KbsClient


def _read(path: str, what: str) -> str:
    from cli.userfiles import read_text

    return read_text(path, what)


def _read_ca(path: str) -> str:
    """The CA certificate file: PEM certificates and nothing else. It travels in a pod
    annotation (initdata) and configures TLS trust, so a private key or any other file given by
    mistake is refused, never sent."""
    from cryptography import x509

    text = _read(path, "CA certificate")
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        certificates = []
    if not certificates or "PRIVATE KEY" in text:
        raise StackFileError(
            f"{path!r} is not a PEM CA certificate"
            + (" (it holds a private key)" if "PRIVATE KEY" in text else ""),
            "pass the stack's CA certificate: pulumi stack output STACK kbsCaCert > ca.pem",
        )
    return text


def _client(args: argparse.Namespace) -> KbsClient:
    from cli.kbs_client import KbsClient, KbsClientError  # pyjwt: only when talking to a KBS

    url = args.url or os.environ.get("COCO_KBS_URL")
    token_file = args.token_file or os.environ.get("COCO_KBS_TOKEN_FILE")
    cacert = args.cacert or os.environ.get("COCO_KBS_CACERT")
    if not url or not token_file:
        raise KbsClientError(
            "the KBS URL and the admin token are needed",
            "pass --url and --token-file (pulumi stack output kbsAdminToken --show-secrets)",
        )
    ca_pem = _read_ca(cacert) if cacert else None
    # the URL is checked (plain HTTP, credentials) before the token file is even read
    KbsClient.check_url(url, args.insecure_http)
    return KbsClient(
        url, _read(token_file, "admin token"), ca_pem, insecure_http=args.insecure_http
    )


def cmd_set_resource(args: argparse.Namespace) -> int:
    from cli.kbs_client import check_resource_path

    check_resource_path(args.path)  # the spec's own rule, before any file is read or request sent
    from cli.userfiles import read_bytes

    value = read_bytes(args.file, "resource file")
    _client(args).set_resource(args.path, value)
    print(f"resource {args.path} set ({len(value)} bytes)")
    return 0


def cmd_set_resource_policy(args: argparse.Namespace) -> int:
    _client(args).set_resource_policy(_read(args.file, "policy"))
    print("resource policy set")
    return 0


def cmd_set_attestation_policy(args: argparse.Namespace) -> int:
    _client(args).set_attestation_policy(_read(args.file, "policy"), args.policy_id)
    print(f"attestation policy {args.policy_id} set")
    return 0


def cmd_get_reference_value(args: argparse.Namespace) -> int:
    """The stored value; `-o json` wraps it (cli/schemas/kbs-get-reference-value.schema.json),
    text prints the value itself as JSON."""
    from cli import output

    value = _client(args).get_reference_value(args.name)
    if getattr(args, "output", "text") == "json":
        output.emit("kbs get-reference-value", {"name": args.name, "value": value})
    else:
        print(json.dumps(value, indent=2, sort_keys=True))
    return 0


def cmd_initdata(args: argparse.Namespace) -> int:
    from components.kbs.broker import kbs_url
    from spec import stackfile
    from spec.validate import validate

    sf = stackfile.load(args.stack)
    spec, _ = validate(
        sf.config, stack=sf.name, secure_paths=sf.secure_paths, base_dir=str(sf.project_dir)
    )
    if not spec.kbs.enabled:
        raise StackFileError(f"stack {sf.name} has no KBS", "set coco:kbs.enabled: true")
    url = args.url or kbs_url(spec.kbs)
    if args.url:
        from cli.kbs_client import KbsClient

        # guests may reach a test KBS over plain HTTP (no admin token travels here), but a
        # URL with user:password@ would put the password into every pod's annotation
        KbsClient.check_url(url, insecure_http=True, for_guests=True)
    ca_pem = _read_ca(args.cacert) if args.cacert else None
    if url.startswith("https://") and ca_pem is None:
        raise StackFileError(
            "guests need the stack's CA certificate to trust the KBS",
            f"pass --cacert (pulumi stack output -s {sf.name} kbsCaCert > ca.pem)",
        )
    policy = _read(args.policy, "agent policy") if args.policy else None
    algorithm = cast(initdata.Algorithm, args.algorithm)
    result: dict[str, Any] = initdata.summary(url, ca_pem, policy=policy, algorithm=algorithm)
    result["stack"] = sf.name
    if getattr(args, "output", "text") == "json":
        from cli import output

        output.emit("initdata", result)
        return 0
    ((key, value),) = result["annotation"].items()
    lines = [
        f"stack {sf.name}: initdata for guests of KBS {url} ({algorithm})",
        "digests:",
        *(f"  {tee}: {digest}" for tee, digest in sorted(result["digests"].items())),
        "pod annotation:",
        f"  {key}: {value}",
        "initdata.toml:",
        *(f"  {line}" for line in result["toml"].splitlines()),
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _connection(parser: argparse.ArgumentParser, top: bool) -> None:
    """--url, --cacert, --token-file, --insecure-http: on `kbs` and on each call (SUPPRESS
    there), so they work before or after the call's name."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--url", default=default, help="KBS URL, e.g. https://kbs.example.com (COCO_KBS_URL)"
    )
    parser.add_argument(
        "--cacert", default=default, help="the stack's CA certificate, PEM (COCO_KBS_CACERT)"
    )
    parser.add_argument(
        "--token-file", default=default, help="file with the admin JWT (COCO_KBS_TOKEN_FILE)"
    )
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="allow an http:// --url: the admin token (full control of the KBS) then travels "
        "in clear; only for a test KBS over a trusted link",
    )


_CONNECT = "--url https://kbs.example.com --cacert ca.pem --token-file admin.jwt"


def add_parsers(sub: Any) -> None:
    """Add `kbs` and `initdata` to the `coco` subcommands."""
    from cli import options

    kbs = options.command(
        sub,
        "kbs",
        help="admin calls to a deployed KBS (HTTPS, admin JWT)",
        examples=f"""
  coco kbs set-resource default/key/1 key.bin {_CONNECT}
  coco kbs {_CONNECT} get-reference-value snp_launch_measurement -o json
""",
    )
    _connection(kbs, top=True)
    calls = kbs.add_subparsers(dest="kbs_command", required=True, metavar="CALL")

    def call(name: str, help: str, examples: str, json: bool = False) -> argparse.ArgumentParser:
        p = options.command(calls, f"kbs {name}", help=help, examples=examples, json=json)
        _connection(p, top=False)
        return p

    p = call(
        "set-resource",
        "store a resource at repo/type/tag",
        f"  coco kbs set-resource default/key/1 key.bin {_CONNECT}",
    )
    p.add_argument("path", help="repo/type/tag")
    p.add_argument("file", help="file holding the value")
    p.set_defaults(func=cmd_set_resource)

    p = call(
        "set-resource-policy",
        "replace the resource policy (Rego)",
        f"  coco kbs set-resource-policy policy.rego {_CONNECT}",
    )
    p.add_argument("file")
    p.set_defaults(func=cmd_set_resource_policy)

    p = call(
        "set-attestation-policy",
        "replace an attestation policy (Rego)",
        f"  coco kbs set-attestation-policy cpu.rego --policy-id default_cpu {_CONNECT}",
    )
    p.add_argument("file")
    p.add_argument("--policy-id", default="default_cpu", help="policy id (default: default_cpu)")
    p.set_defaults(func=cmd_set_attestation_policy)

    p = call(
        "get-reference-value",
        "print a reference value as JSON",
        f"  coco kbs get-reference-value snp_launch_measurement {_CONNECT}\n"
        f"  COCO_KBS_URL=... coco kbs get-reference-value mr_td -o json | jq .value",
        json=True,
    )
    p.add_argument("name", help="e.g. snp_launch_measurement")
    p.set_defaults(func=cmd_get_reference_value)

    p = options.command(
        sub,
        "initdata",
        help="print the guests' initdata, annotation and digests",
        stack="required",
        json=True,
        examples="""
  pulumi stack output -s dev kbsCaCert > ca.pem
  coco initdata dev --cacert ca.pem
  coco initdata dev --cacert ca.pem -o json | jq -r '.annotation[]' > initdata.b64
""",
    )
    p.add_argument("--cacert", help="the stack's CA certificate, PEM (kbsCaCert output)")
    p.add_argument("--url", help="KBS URL as guests reach it (default: from the stack)")
    p.add_argument("--policy", help="kata agent policy (Rego) to include as policy.rego")
    p.add_argument("--algorithm", choices=initdata.ALGORITHMS, default="sha256")
    p.set_defaults(func=cmd_initdata)
