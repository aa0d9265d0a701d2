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
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from components import initdata
from spec.errors import StackFileError

if TYPE_CHECKING:
    from cli.kbs_client import KbsClient


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise StackFileError(f"cannot read {what} {path!r}: {exc.strerror}") from None


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
    try:
        value = Path(args.file).read_bytes()
    except OSError as exc:
        raise StackFileError(f"cannot read {args.file!r}: {exc.strerror}") from None
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
    print(json.dumps(_client(args).get_reference_value(args.name), indent=2, sort_keys=True))
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
        KbsClient.check_url(url, insecure_http=True)
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
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


def add_parsers(sub: Any) -> None:
    """Add `kbs` and `initdata` to the `coco` subcommands."""
    kbs = sub.add_parser("kbs", help="admin calls to a deployed KBS (HTTPS, admin JWT)")
    kbs.add_argument("--url", help="KBS URL, e.g. https://kbs.example.com (COCO_KBS_URL)")
    kbs.add_argument("--cacert", help="the stack's CA certificate, PEM (COCO_KBS_CACERT)")
    kbs.add_argument("--token-file", help="file with the admin JWT (COCO_KBS_TOKEN_FILE)")
    kbs.add_argument(
        "--insecure-http",
        action="store_true",
        help="allow an http:// --url: the admin token (full control of the KBS) then travels "
        "in clear; only for a test KBS over a trusted link",
    )
    calls = kbs.add_subparsers(dest="kbs_command", required=True)

    p = calls.add_parser("set-resource", help="store a resource at repo/type/tag")
    p.add_argument("path", help="repo/type/tag")
    p.add_argument("file", help="file holding the value")
    p.set_defaults(func=cmd_set_resource)

    p = calls.add_parser("set-resource-policy", help="replace the resource policy (Rego)")
    p.add_argument("file")
    p.set_defaults(func=cmd_set_resource_policy)

    p = calls.add_parser("set-attestation-policy", help="replace an attestation policy (Rego)")
    p.add_argument("file")
    p.add_argument("--policy-id", default="default_cpu", help="policy id (default: default_cpu)")
    p.set_defaults(func=cmd_set_attestation_policy)

    p = calls.add_parser("get-reference-value", help="print a reference value as JSON")
    p.add_argument("name", help="e.g. snp_launch_measurement")
    p.set_defaults(func=cmd_get_reference_value)

    p = sub.add_parser("initdata", help="print the guests' initdata, annotation and digests")
    p.add_argument("stack", help="a stack name in stacks/ or a path to a stack YAML file")
    p.add_argument("--cacert", help="the stack's CA certificate, PEM (kbsCaCert output)")
    p.add_argument("--url", help="KBS URL as guests reach it (default: from the stack)")
    p.add_argument("--policy", help="kata agent policy (Rego) to include as policy.rego")
    p.add_argument("--algorithm", choices=initdata.ALGORITHMS, default="sha256")
    p.set_defaults(func=cmd_initdata)
