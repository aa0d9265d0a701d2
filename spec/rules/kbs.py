"""Rules for `coco:kbs`: resources, policies, reference values, exposure, the SE verifier and
the kata guest measured for bare-metal SNP pools."""

from __future__ import annotations

import json
import os

from spec import catalogue, versions
from spec import files as userfiles
from spec.keys import placeholder
from spec.model import Kbs, KbsResource, NodePool

from .base import Collector, did_you_mean

_POLICY_BYTES = 1024 * 1024  # a policy is a page of Rego, not data

BUILTIN_RESOURCE_POLICIES = ("affirming", "allow-all")


def _policy(
    out: Collector, path: str, value: str, words: tuple[str, ...], base: str | None
) -> None:
    if value in words:
        return
    if not value.endswith(".rego"):
        out.error(
            path,
            f"{value!r} is neither {' nor '.join(words)} nor a .rego file",
            f"use {' or '.join(words)}, or a path to a Rego policy file",
        )
        return
    full = value if os.path.isabs(value) or base is None else os.path.join(base, value)
    kind = userfiles.problem(full)
    if kind is not None:
        out.error(
            path,
            f"policy file {value!r} {kind}",
            "paths are relative to the project directory (where Pulumi.yaml is); name a "
            "regular file",
        )


def _policy_files(
    out: Collector, k: Kbs, env: str | None, base: str | None, pools: list[NodePool]
) -> None:
    """User policy files, read now so a broken one stops the stack before anything is
    registered: the package line always (spec.attestation.rego_problem), then, with `opa`
    (spec.rego), a compile check and, for the resource policy, an evaluation against synthetic
    tokens it must refuse. Both the KBS resource policy (data.policy.allow) and the attestation
    service's EAR policy (data.policy.trust_claims) live in package "policy" (trustee
    kbs/src/api_server.rs, attestation-service/src/ear_token/broker.rs@v0.21.0). The built-in
    policies run no opa here: tests/spec/test_rego.py compiles, unit-tests and evaluates them."""
    from spec.attestation import rego_problem

    p = "coco:kbs"
    texts: dict[str, tuple[str, str]] = {}  # key -> (value as written, text)
    for key, value in (
        ("resourcePolicy", k.resource_policy),
        ("attestationPolicy", k.attestation_policy),
    ):
        if not value.endswith(".rego"):
            continue
        full = value if os.path.isabs(value) or base is None else os.path.join(base, value)
        if userfiles.problem(full) is not None:
            continue  # reported by _policy
        try:
            text = userfiles.read_text(full, _POLICY_BYTES)
            if len(text.encode()) > _POLICY_BYTES:
                raise ValueError("larger than 1 MiB")
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            problem: str | None = (
                "is not valid UTF-8 text" if isinstance(exc, UnicodeDecodeError)
                else f"is {exc}" if isinstance(exc, ValueError)
                else f"cannot be read ({exc})" if isinstance(exc, userfiles.NotRegularFile)
                else f"cannot be read ({exc.strerror or exc.__class__.__name__})"
            )
        else:
            problem = rego_problem(text, "policy")
        if problem:
            out.error(
                f"{p}.{key}",
                f"policy file {value!r} {problem}",
                "write a Rego policy that starts with 'package policy'",
            )
            continue
        texts[key] = (value, text)
    if not texts:
        return
    from spec import rego

    opa = rego.find_opa()
    if opa is None:
        files = " and ".join(repr(value) for value, _ in texts.values())
        unevaluated = (
            ", and the resource policy was not evaluated for production safety"
            if "resourcePolicy" in texts
            else ""
        )
        out.warn(
            f"{p}.{next(iter(texts))}",
            f"opa not found: {files} only checked lightly (package line){unevaluated}; "
            + rego.HOW_TO_GET_OPA,
        )
        return
    for key, (value, text) in texts.items():
        try:
            errors = rego.check(opa, text, value, attestation=key == "attestationPolicy")
        except rego.OpaError as exc:
            out.warn(f"{p}.{key}", f"{value!r} was not checked: {exc}", rego.HOW_TO_GET_OPA)
            continue
        if errors:
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            out.error(
                f"{p}.{key}",
                f"policy file {value!r} does not compile: {'; '.join(errors[:3])}{more}",
                "Trustee's engine reads Rego v1 (rule bodies need `if`, multi-value rules "
                "`contains`); see every error with: opa check " + value,
            )
        elif key == "resourcePolicy":
            _release_check(out, k, env, value, text, opa, pools)


def _release_check(
    out: Collector, k: Kbs, env: str | None, value: str, text: str, opa: str,
    pools: list[NodePool],
) -> None:
    """Evaluate a user resource policy against tokens it must not release to (spec.rego
    release_cases): refused in production, a warning elsewhere, naming the cases it allowed."""
    from spec import rego

    path = "coco:kbs.resourcePolicy"
    tees = rego.stack_tees(pools)
    cases = rego.release_cases(tees)
    hint = (
        "release only when every submodule's ear.status is \"affirming\" and its evidence is "
        f"from this stack's TEEs ({', '.join(tees)}); start from "
        "components/policies/resource-affirming.rego with its tees line set to "
        f"{{{', '.join(json.dumps(t) for t in tees)}}} (docs/kbs.md, \"Resource policies\")"
    )
    refused = "; refused in production" if env == "production" else ""
    report = out.error if env == "production" else out.warn
    try:
        allowed = rego.allowed_cases(opa, text, cases, [r.path for r in k.resources], value)
    except rego.OpaError as exc:
        report(path, f"policy file {value!r} fails when evaluated: {exc}{refused}", hint)
        return
    bad = [c.name for c in cases if c.must_deny and c.name in allowed]
    if not bad:
        return
    more = ""
    if len(bad) > 1:
        listed = ", ".join(bad[1:4]) + (", ..." if len(bad) > 4 else "")
        more = f" (and {len(bad) - 1} more case(s): {listed})"
    report(
        path,
        f"policy file {value!r} releases resources for {bad[0]}{more}{refused}",
        hint if refused else f"{hint}; refused in production",
    )


PLACEHOLDER = "PLACEHOLDER"  # sample stacks mark values the operator must read off real guests


def _placeholder(out: Collector, path: str, what: str, env: str | None) -> None:
    message = (
        f"{what} is a placeholder (it starts with {PLACEHOLDER}): no guest matches it, so the KBS "
        "releases nothing to the guests it is for"
    )
    hint = "set the real value (docs/bare-metal.md, \"Reference values\", says where to read it)"
    if env == "production":
        out.error(path, f"{message}; refused in production", hint)
    else:
        out.warn(path, message, hint)


def _reference_values(out: Collector, k: Kbs, pools: list[NodePool], env: str | None) -> None:
    """A reference value the policy never reads silently turns an attestation result into a
    warning (upstream pain point), so names are checked against the default policy's."""
    from spec.attestation import reference_value_problem
    known = list(catalogue.DEFAULT_POLICY_REFERENCE_VALUES)
    used = {
        n
        for x in pools
        if (o := catalogue.find(x.provider or "", x.tee, x.mode or "")) is not None
        for n in o.reference_values
    }
    custom_policy = k.attestation_policy != "default"
    for name, value in sorted(k.reference_values.items()):
        path = f"coco:kbs.referenceValues.{name}"
        if name not in known:
            typo = did_you_mean(name, known)
            if typo and not custom_policy:
                out.error(
                    path,
                    f"{name!r} is not read by the attestation policy",
                    f"{typo}the default policy reads: {', '.join(known)}",
                )
            else:
                out.warn(
                    path,
                    f"{name!r} is not read by the default attestation policy",
                    "keep it only if your own attestation policy reads it",
                )
        elif pools and name not in used:
            out.warn(
                path,
                f"no pool of this stack reports evidence that reads {name!r}",
                "remove it, or check the pools' TEEs",
            )
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and v.startswith(PLACEHOLDER) for v in items):
            _placeholder(out, path, "the value", env)
        if value == [] or value == "" or (isinstance(value, list) and "" in value):
            out.error(
                path,
                "needs a value or a non-empty list of values",
                "list the accepted values (numbers stay numbers: SNP TCB versions are "
                "compared as numbers)",
            )
        elif problem := reference_value_problem(name, value):
            # the name's shape, or a list where the policy compares one value with ==
            out.error(
                path,
                problem,
                "use letters, digits and _ like snp_launch_measurement, and give the names "
                "the policy compares with == (snp_smt_enabled, major_version, ...) one value",
            )


def reference_value_coverage(
    out: Collector, k: Kbs, env: str | None, pools: list[tuple[int, NodePool]]
) -> None:
    """Every pool whose guests the default attestation policy cannot affirm with the reference
    values this stack gives the KBS (spec.coverage): the KBS would release nothing to them. An
    error in staging and production, a warning in dev. A stack with its own attestation policy
    decides itself what it needs. `pools`: (position in coco:nodePools, pool) of the pools
    that passed type checking."""
    if not k.enabled or k.attestation_policy != "default":
        return
    from spec import coverage

    for index, pool in pools:
        found = coverage.gap(pool, k)
        if found is None:
            continue
        tiers = ", ".join(f"{claim} {tier}" for claim, tier in found.claims)
        message = (
            f"pool {pool.name!r} presents {found.evidence} evidence, and the KBS has no "
            f"reference value {', '.join(found.missing)}: the default attestation policy "
            f"({versions.TRUSTEE_VERSION}) leaves {tiers}, so the KBS releases nothing to "
            "its guests"
        )
        hint = (
            "set coco:kbs.referenceValues: "
            + coverage.grouped_sources(found)
            + " (docs/security.md, \"What is attested\")"
        )
        if env in ("staging", "production"):
            out.error(f"coco:nodePools[{index}]", f"{message}; refused in {env}", hint)
        else:
            out.warn(
                f"coco:nodePools[{index}]", message, f"{hint}; refused in staging and production"
            )


def check_kbs(
    out: Collector,
    k: Kbs,
    env: str | None,
    secure: frozenset[str],
    base: str | None,
    pools: list[NodePool],
    items: list[KbsResource | None],
) -> None:
    """KBS rules; `items` are the resources as written (None where invalid), so indices in
    messages are the user's."""
    p = "coco:kbs"
    if not k.enabled:
        if k.resources:
            out.error(
                f"{p}.resources",
                "resources are set but the KBS is disabled",
                "set coco:kbs.enabled: true, or remove the resources",
            )
        if any(
            (o := catalogue.find(x.provider or "", x.tee, x.mode or "")) is not None and o.evidence
            for x in pools
        ):
            out.warn(
                f"{p}.enabled",
                "no KBS: guests cannot get attestation-gated secrets",
                "enable the KBS, or point the pools at a KBS you run elsewhere",
            )
        return
    if k.expose == "ingress" and k.hostname is None:
        out.error(
            f"{p}.hostname",
            "expose: ingress needs a hostname",
            "set hostname, for example 'kbs.example.com'",
        )
    if k.expose == "ingress" and k.insecure_http:
        out.error(
            f"{p}.insecureHttp",
            "the ingress passes TLS through to the KBS, which would be serving plain HTTP",
            "drop insecureHttp, or expose the KBS with nodeport or loadbalancer",
        )
    if k.expose == "nodeport" and k.hostname is not None and k.node_port is None:
        out.error(
            f"{p}.nodePort",
            "expose: nodeport with a hostname needs a fixed node port: Kubernetes would pick a "
            "random one, and the KBS URL guests are given could not name it",
            "set nodePort to a free port from 30000 to 32767, for example 30443",
        )
    if k.node_port is not None and k.expose != "nodeport":
        out.warn(f"{p}.nodePort", f"not used with expose: {k.expose}", "remove nodePort")
    # the runtime's namespace is components.runtime.NAMESPACE (not imported: it loads Pulumi)
    taken = {"coco-system": "the CoCo runtime", versions.PEERPODS_NAMESPACE: "peer pods"}
    if k.namespace in taken or k.namespace == "default" or k.namespace.startswith("kube-"):
        owner = taken.get(k.namespace, "Kubernetes")
        out.error(
            f"{p}.namespace",
            f"{k.namespace!r} belongs to {owner}; the KBS needs a namespace of its own (it "
            "labels it for restricted pod security)",
            "use the default coco-kbs, or another name of your own",
        )
    seen: dict[str, int] = {}
    for i, res in enumerate(items):
        if res is None:
            continue
        if res.path in seen:
            out.error(
                f"{p}.resources[{i}].path",
                f"{res.path!r} is already defined at coco:kbs.resources[{seen[res.path]}]",
                "give each resource its own path",
            )
        seen.setdefault(res.path, i)
        if f"{p}.resources[{i}].value" not in secure:
            out.warn(
                f"{p}.resources[{i}].value",
                "stored in plain text in the stack file (it is still handled as a secret)",
                f"run: pulumi config set --secret --path 'coco:kbs.resources[{i}].value' VALUE",
            )
    _reference_values(out, k, pools, env)
    _policy(out, f"{p}.resourcePolicy", k.resource_policy, BUILTIN_RESOURCE_POLICIES, base)
    _policy(out, f"{p}.attestationPolicy", k.attestation_policy, ("default",), base)
    _policy_files(out, k, env, base, pools)
    if k.resource_policy == "allow-all":
        if env == "production":
            out.error(
                f"{p}.resourcePolicy",
                "allow-all releases secrets without checking the "
                "attestation result; refused in production",
                "use affirming",
            )
        else:
            out.warn(
                f"{p}.resourcePolicy",
                "allow-all releases secrets without checking the attestation result",
                "use affirming outside development",
            )
    if k.insecure_http:
        if env == "production":
            out.error(
                f"{p}.insecureHttp",
                "plain HTTP is refused in production",
                "remove insecureHttp; the KBS serves HTTPS with the stack's CA",
            )
        else:
            out.warn(f"{p}.insecureHttp", "the KBS serves plain HTTP", "use it in dev only")


def _is_base64(path: str, value: str) -> bool:
    import base64
    import binascii


    if value == placeholder(path):
        return True  # a secure value of a stack file read without Pulumi: not decryptable here
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(value)


def se_verifier_and_kata_guest(
    out: Collector,
    k: Kbs,
    env: str | None,
    pools: list[NodePool],
    secure: frozenset[str],
    base: str | None,
) -> None:
    """The KBS's IBM SE verifier material (components.kbs.se_verifier) and the kata guest measured
    for bare-metal SNP pools (images.kata)."""
    from pathlib import Path

    from images import kata as kata_measure

    p = "coco:kbs"
    if not k.enabled:
        for key, given in (("seVerifier", k.se_verifier), ("kataGuest", k.kata_guest)):
            if given is not None:
                out.error(
                    f"{p}.{key}",
                    f"{key} is set but the KBS is disabled",
                    f"set coco:kbs.enabled: true, or remove {key}",
                )
        return
    se_pools = any(x.tee == "se" for x in pools)
    v = k.se_verifier
    if v is None and se_pools:
        out.warn(
            f"{p}.seVerifier",
            "Secure Execution guests cannot attest: the KBS has no SE verifier material",
            "set seVerifier (hostKeyDocuments, imageHeader, certificates, crls); see "
            "docs/secure-execution.md",
        )
    if v is not None:
        if not se_pools:
            out.warn(
                f"{p}.seVerifier",
                "no pool of this stack runs Secure Execution guests",
                "remove seVerifier, or add a pool with tee: se",
            )
        if v.skip_certificate_verification:
            if env == "production":
                out.error(
                    f"{p}.seVerifier.skipCertificateVerification",
                    "trusting host key documents without IBM's signature is refused in "
                    "production",
                    "remove it and give certificates and crls",
                )
            else:
                out.warn(
                    f"{p}.seVerifier.skipCertificateVerification",
                    "host key documents are trusted without checking IBM's signature",
                    "use it on development machines only",
                )
        else:
            for key in ("certificates", "crls"):
                if not getattr(v, key):
                    out.error(
                        f"{p}.seVerifier.{key}",
                        "checking the host key documents needs IBM's signing certificates and "
                        "their revocation lists",
                        "add the files from IBM Resource Link (base64), or set "
                        "skipCertificateVerification: true in development",
                    )
        paths = [f"{p}.seVerifier.imageHeader"] + (
            [f"{p}.seVerifier.rootCa"] if v.root_ca is not None else []
        )
        for key, items in (
            ("hostKeyDocuments", v.host_key_documents),
            ("certificates", v.certificates),
            ("crls", v.crls),
        ):
            paths += [f"{p}.seVerifier.{key}[{i}]" for i in range(len(items))]
        values = [v.image_header, *([v.root_ca] if v.root_ca is not None else [])]
        values += [*v.host_key_documents, *v.certificates, *v.crls]
        for path, value in zip(paths, values, strict=True):
            if not _is_base64(path, value.get_secret_value()):
                out.error(
                    path,
                    "is not base64",
                    f"give the file's bytes base64-encoded: base64 -w0 FILE | pulumi config set "
                    f"--secret --path '{path}'",
                )
            if path not in secure:
                out.warn(
                    path,
                    "stored in plain text in the stack file (it is still handled as a secret)",
                    f"run: base64 -w0 FILE | pulumi config set --secret --path '{path}'",
                )
    g = k.kata_guest
    if g is not None:
        # offline: only the image cache is read; `pulumi up` or `coco fetch` download
        found, pending = kata_measure.inspect(g, Path(base or "."), offline=True)
        for key, message, hint in found:
            out.error(f"{p}.kataGuest.{key}", message, hint)
        if pending is not None:
            out.warn(
                f"{p}.kataGuest",
                f"the kata guest is not measured yet: {pending}",
                f"{pending.hint}, then measures the guest into snp_launch_measurement",
            )
        if g.cmdline.startswith(PLACEHOLDER):
            _placeholder(out, f"{p}.kataGuest.cmdline", "the kernel command line", env)
        if g.mirror and g.firmware and g.kernel:
            out.warn(
                f"{p}.kataGuest.mirror",
                "not used: firmware and kernel are both local files, nothing is downloaded",
                "remove mirror, or leave out firmware and kernel to take them from the release",
            )
        if not any(x.tee == "snp" and x.mode == "bare-metal" for x in pools):
            out.warn(
                f"{p}.kataGuest",
                "kataGuest measures the guests of bare-metal snp pools; this stack has none",
                "remove kataGuest, or add a bare-metal snp pool",
            )
