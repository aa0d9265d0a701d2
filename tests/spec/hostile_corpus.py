# ruff: noqa: E501  (one case per line, as the issue asks: a table reads better unwrapped)
"""A corpus of hostile stack files (issue 18), shared by tests/spec/test_hostile_corpus.py and
benchmarks/hostile_bench.py.

One case per line: (id, stack file text, expected key path, expected message fragment, one).
`path` FILE means a refusal of the whole file (StackFileError, which names the file and, where
there is one, the line); `one` asks that this mistake gives exactly one error. Every file that
carries a secret carries SECRET, the marker no message may ever contain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from spec import stackfile
from spec.errors import ConfigIssue, SpecError, StackFileError
from spec.validate import validate

SECRET = "S3CRET-xyz"
FILE = "FILE"


def c(*lines: str) -> str:
    """A stack file: `config:` and the given lines, each already indented."""
    return "\n".join(["config:", *lines]) + "\n"


# a KBS resource holding the marker, in plain text (a warning only: it is still a secret)
RES = ("  coco:kbs:", "    resources:", "      - path: default/key/1", f"        value: {SECRET}")


def pool(*host_lines: str, env: str = "dev", name: str = "metal") -> tuple[str, ...]:
    return (f"  coco:environment: {env}", "  coco:nodePools:", f"    - name: {name}",
            "      tee: none", "      provider: baremetal", "      hosts:", *host_lines)


def host(address: str, key: str = "{secure: v1:AAAA}", extra: str = "") -> tuple[str, ...]:
    return (f"        - address: {address}", f"          sshKey: {key}",
            *((f"          {extra}",) if extra else ()))


def two_pools(first: str, second: str) -> str:
    key = "sshKey: {secure: v1:AAAA}"
    return c("  coco:environment: dev", "  coco:nodePools:",
             f"    - {{name: a, tee: none, provider: baremetal, hosts: [{{address: '{first}', {key}}}]}}",
             f"    - {{name: b, tee: none, provider: baremetal, hosts: [{{address: '{second}', {key}}}]}}")


def laughs(depth: int) -> str:
    lines = ["config:", f"  a0: &a0 [{SECRET}, {SECRET}]"]
    lines += [f"  a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, depth)]
    return "\n".join([*lines, f"  coco:kbs: {{resources: *a{depth - 1}}}"]) + "\n"


def nested(depth: int) -> str:
    lines = ["config:", "  coco:runtime:"]
    lines += [f"{'  ' * (i + 2)}k{i}:" for i in range(depth)]
    return "\n".join([*lines, f"{'  ' * (depth + 2)}{SECRET}"]) + "\n"


Text = str | bytes | tuple[str, str]  # a file's text, bytes, or (file name, text)
CASES: list[tuple[str, Text, str, str, bool]] = [
    # --- secrets in messages: encoding and syntax errors never quote the file ---------------
    ("utf8-in-secret", c(*RES).encode().replace(b"xyz", b"x\xffyz"), FILE, "line 5, column 24", False),
    ("utf8-first-line", b"\xfeconfig:\n  coco:environment: dev\n", FILE, "line 1, column 1", False),
    ("latin1-file", c(*RES[:3], "        value: S3CRET-xyz-caf\xe9").encode("latin-1"), FILE, "is not valid UTF-8", False),
    ("utf16-bom", "config:\n".encode("utf-16"), FILE, "is not valid UTF-8", False),
    ("yaml-open-quote", c(*RES[:3], f"        value: '{SECRET}", "  coco:environment: dev"), FILE, "invalid YAML at line", False),
    ("yaml-tab-indent", c(*RES, f"\tx: {SECRET}"), FILE, "invalid YAML at line 6", False),
    ("yaml-bad-indent", c(*RES[:3], f"       value: {SECRET}", "     bad: x"), FILE, "invalid YAML at line", False),
    ("yaml-nul-byte", c(*RES[:3], f"        value: {SECRET}\x00"), FILE, "invalid YAML at line 5", False),
    ("yaml-open-flow", c(f"  coco:kbs: {{resources: [{{path: a/b/c, value: {SECRET}}}"), FILE, "invalid YAML at line", False),
    ("yaml-bad-escape", c(*RES[:3], f'        value: "{SECRET}\\q"'), FILE, "invalid YAML at line 5", False),
    ("yaml-two-documents", c(*RES) + "---\nconfig: {}\n", FILE, "invalid YAML at line", False),
    ("yaml-control-char", c(*RES[:3], f"        value: {SECRET}\x07"), FILE, "invalid YAML at line 5", False),
    ("yaml-undefined-alias", c(*RES[:3], f"        value: *{SECRET}"), FILE, "invalid YAML at line", False),
    # a wrong type at a secret path is never quoted, whatever the type
    ("secret-int-value", c(*RES[:3], "        value: 31337424242"), "coco:kbs.resources[0].value", "expected a string, got an integer", True),
    ("secret-float-value", c(*RES[:3], "        value: 3.1337424242"), "coco:kbs.resources[0].value", "expected a string, got a number", True),
    ("secret-bool-value", c(*RES[:3], "        value: true"), "coco:kbs.resources[0].value", "expected a string", True),
    ("secret-list-value", c(*RES[:3], f"        value: [{SECRET}]"), "coco:kbs.resources[0].value", "expected a string, got a list", True),
    ("secret-map-value", c(*RES[:3], f"        value: {{a: {SECRET}}}"), "coco:kbs.resources[0].value", "expected a string, got a mapping", True),
    ("secret-resources-string", c("  coco:kbs:", f"    resources: {SECRET}"), "coco:kbs.resources", "expected a list", True),
    ("secret-resource-string", c("  coco:kbs:", f"    resources: [{SECRET}]"), "coco:kbs.resources[0]", "expected a mapping", True),
    ("secret-sshkey-int", c(*pool(*host("10.0.0.1", "123456789012"))), "coco:nodePools[0].hosts[0].sshKey", "expected a string, got an integer", False),
    ("secret-sshkey-list", c(*pool(*host("10.0.0.1", f"[{SECRET}]"))), "coco:nodePools[0].hosts[0].sshKey", "expected a string, got a list", False),
    ("secret-sshkey-map", c(*pool(*host("10.0.0.1", f"{{k: {SECRET}}}"))), "coco:nodePools[0].hosts[0].sshKey", "expected a string, got a mapping", False),
    ("secret-sshkey-plain", c(*pool(*host("10.0.0.1", f"'{SECRET}'"))), "coco:nodePools[0].hosts[0].sshKey", "must be stored as a secret", True),
    ("secret-host-string", c(*pool(f"        - {SECRET}")), "coco:nodePools[0].hosts[0]", "expected a mapping", True),
    ("secret-hosts-string", c("  coco:nodePools:", "    - name: metal", "      tee: none", "      provider: baremetal", f"      hosts: {SECRET}"), "coco:nodePools[0].hosts", "expected a list", True),
    ("secret-kubeconfig-int", c("  coco:cluster:", "    kubeconfig: 424242424242"), "coco:cluster.kubeconfig", "expected a string, got an integer", True),
    ("secret-kubeconfig-list", c("  coco:cluster:", f"    kubeconfig: [{SECRET}]"), "coco:cluster.kubeconfig", "expected a string, got a list", True),
    ("secret-kubeconfig-plain", c("  coco:cluster:", f"    kubeconfig: {SECRET}"), "coco:cluster.kubeconfig", "must be stored as a secret", True),
    ("secret-cluster-string", c(f"  coco:cluster: {SECRET}"), "coco:cluster", "expected a mapping", True),
    ("secret-apikey-int", c("  coco:nodePools:", "    - {name: se, tee: se, provider: ibmcloud, ibmcloud: {vpcId: r1, subnetId: s1, imageId: i1, resourceGroupId: g1, apiKey: 777777777777}}"), "coco:nodePools[0].ibmcloud.apiKey", "expected a string, got an integer", False),
    ("secret-ibmcloud-string", c("  coco:nodePools:", f"    - {{name: se, tee: se, provider: ibmcloud, ibmcloud: {SECRET}}}"), "coco:nodePools[0].ibmcloud", "expected a mapping", False),
    ("secret-hkd-string", c("  coco:kbs:", "    seVerifier:", f"      hostKeyDocuments: {SECRET}", "      imageHeader: {secure: v1:AAAA}"), "coco:kbs.seVerifier.hostKeyDocuments", "expected a list", True),
    ("secret-header-int", c("  coco:kbs:", "    seVerifier:", "      hostKeyDocuments: [{secure: v1:AAAA}]", "      imageHeader: 5555555555"), "coco:kbs.seVerifier.imageHeader", "expected a string, got an integer", False),
    ("secret-severifier-string", c("  coco:kbs:", f"    seVerifier: {SECRET}"), "coco:kbs.seVerifier", "expected a mapping", True),
    ("secret-crl-map", c("  coco:kbs:", "    seVerifier:", "      hostKeyDocuments: [{secure: v1:AAAA}]", "      imageHeader: {secure: v1:AAAA}", f"      crls: [{{x: {SECRET}}}]"), "coco:kbs.seVerifier.crls[0]", "expected a string", False),
    # URL credentials are redacted in every message
    ("url-mirror-creds", c("  coco:kbs:", f"    kataGuest: {{cmdline: x, mirror: 'https://admin:{SECRET}@mirror.example/k.tar.xz'}}"), "coco:kbs.kataGuest.mirror", "without user or password", True),
    ("url-mirror-token", c("  coco:kbs:", f"    kataGuest: {{cmdline: x, mirror: 'https://{SECRET}@mirror.example/k.tar.xz'}}"), "coco:kbs.kataGuest.mirror", "without user or password", True),
    ("url-mirror-ftp-creds", c("  coco:kbs:", f"    kataGuest: {{cmdline: x, mirror: 'ftp://u:{SECRET}@mirror.example/k'}}"), "coco:kbs.kataGuest.mirror", "without user or password", True),
    ("url-chart-creds", c("  coco:charts:", f"    runtime: {{repository: 'oci://robot:{SECRET}@registry.example/charts'}}"), "coco:charts.runtime.repository", "not an oci:// repository", True),
    ("url-chart-https-creds", c("  coco:charts:", f"    peerPods: {{repository: 'https://robot:{SECRET}@registry.example/charts'}}"), "coco:charts.peerPods.repository", "not an oci:// repository", True),
    ("url-hostname-creds", c("  coco:kbs:", f"    hostname: 'https://u:{SECRET}@kbs.example'"), "coco:kbs.hostname", "is not a valid DNS name", True),
    ("url-host-address-creds", c(*pool(*host(f"'root:{SECRET}@10.0.0.1'"))), "coco:nodePools[0].hosts[0].address", "is not a", True),
    ("url-context-creds-unknown", c("  coco:cluster:", f"    contxt: 'https://u:{SECRET}@api.example'"), "coco:cluster.contxt", "unknown key", True),
    ("url-policy-creds", c("  coco:kbs:", f"    resourcePolicy: 'https://u:{SECRET}@p.example/p.rego'"), "coco:kbs.resourcePolicy", "", False),
    ("secure-on-non-secret", c("  coco:cluster:", "    context: {secure: v1:AAAA}"), "coco:cluster.context", "this key is not secret", True),
    ("secure-on-user", c(*pool(*host("10.0.0.1", extra="user: {secure: v1:AAAA}"))), "coco:nodePools[0].hosts[0].user", "this key is not secret", True),
    ("secure-on-address", c(*pool(*host("{secure: v1:AAAA}"))), "coco:nodePools[0].hosts[0].address", "this key is not secret", True),
    ("secure-on-host-key", c(*pool(*host("10.0.0.1", extra="hostKey: {secure: v1:AAAA}"))), "coco:nodePools[0].hosts[0].hostKey", "this key is not secret", True),
    ("secure-on-section", c("  coco:kbs: {secure: v1:AAAA}"), "coco:kbs", "this key is not secret", True),
    ("secure-on-environment", c("  coco:environment: {secure: v1:AAAA}"), "coco:environment", "this key is not secret", True),
    ("secure-on-resource-path", c("  coco:kbs:", "    resources:", "      - path: {secure: v1:AAAA}", "        value: {secure: v1:AAAA}"), "coco:kbs.resources[0].path", "this key is not secret", True),
    ("secure-on-chart-repository", c("  coco:charts:", "    runtime: {repository: {secure: v1:AAAA}}"), "coco:charts.runtime.repository", "this key is not secret", True),
    ("secure-on-region", c("  coco:cluster: {provider: eks, region: {secure: v1:AAAA}}"), "coco:cluster.region", "this key is not secret", True),
    ("secure-not-ciphertext", c(*RES[:3], f"        value: {{secure: {SECRET}}}"), "coco:kbs.resources[0].value", "is not Pulumi ciphertext", True),
    ("secure-not-ciphertext-key", c(*pool(*host("10.0.0.1", key=f"{{secure: {SECRET}}}"))), "coco:nodePools[0].hosts[0].sshKey", "is not Pulumi ciphertext", True),
    ("secure-not-ciphertext-short-base64", c(*RES[:3], "        value: {secure: S3CRETxyz123}"), "coco:kbs.resources[0].value", "is not Pulumi ciphertext", True),
    ("secure-not-ciphertext-empty-v1", c(*RES[:3], "        value: {secure: 'v1:'}"), "coco:kbs.resources[0].value", "is not Pulumi ciphertext", True),
    ("secure-not-ciphertext-other-ns", c("  coco:environment: dev", f"  aws:secretKey: {{secure: {SECRET}}}"), "aws:secretKey", "is not Pulumi ciphertext", True),
    # --- namespace lookalikes and misplaced config ------------------------------------------
    ("ns-capital", c("  Coco:environment: production"), "Coco:environment", "did you mean 'coco:environment'", True),
    ("ns-upper", c("  COCO:kbs: {}"), "COCO:kbs", "did you mean 'coco:kbs'", True),
    ("ns-dot", c("  coco.kbs: {}"), "coco.kbs", "did you mean 'coco:kbs'", True),
    ("ns-underscore", c("  coco_kbs: {}"), "coco_kbs", "did you mean 'coco:kbs'", True),
    ("ns-dash", c("  coco-nodePools: []"), "coco-nodePools", "did you mean 'coco:nodePools'", True),
    ("ns-slash", c("  coco/cluster: {}"), "coco/cluster", "did you mean 'coco:cluster'", True),
    ("ns-space", c("  coco environment: production"), "coco environment", "did you mean 'coco:environment'", True),
    ("ns-extra-letter", c("  cocoo:cluster: {}"), "cocoo:cluster", "did you mean 'coco:cluster'", True),
    ("ns-missing-letter", c("  coc:environment: production"), "coc:environment", "did you mean 'coco:environment'", True),
    ("ns-substituted-letter", c("  cpco:environment: production"), "cpco:environment", "did you mean 'coco:environment'", True),
    ("ns-cyrillic-o", c("  coc\u043e:environment: production"), "coc\u043e:environment", "did you mean 'coco:environment'", True),
    ("ns-cyrillic-capital", c("  C\u043eco:kbs: {expose: public}"), "C\u043eco:kbs", "did you mean 'coco:kbs'", True),
    ("ns-cyrillic-c", c("  \u0441oco:environment: production"), "\u0441oco:environment", "did you mean 'coco:environment'", True),
    ("ns-greek-omicron", c("  c\u03bfco:environment: production"), "c\u03bfco:environment", "did you mean 'coco:environment'", True),
    ("ns-fullwidth-colon", c("  coco\uff1aenvironment: production"), "coco\uff1aenvironment", "did you mean 'coco:environment'", True),
    ("ns-fullwidth-letters", c("  \uff43\uff4f\uff43\uff4f:environment: production"), "\uff43\uff4f\uff43\uff4f:environment", "did you mean 'coco:environment'", True),
    ("ns-small-capital", c("  \u1d04oco:environment: production"), "\u1d04oco:environment", "did you mean 'coco:environment'", True),
    ("ns-zero-width-space", c("  coco\u200b:environment: production"), "coco\u200b:environment", "did you mean 'coco:environment'", True),
    ("ns-zero-width-joiner", c("  co\u200dco:kbs: {}"), "co\u200dco:kbs", "did you mean 'coco:kbs'", True),
    ("ns-digit-zero", c("  c0c0:environment: production"), "c0c0:environment", "did you mean 'coco:environment'", True),
    ("ns-ideographic-stop", c("  coco\u3002kbs: {}"), "coco\u3002kbs", "did you mean 'coco:kbs'", True),
    ("ns-bare-section", c("  environment: production"), "environment", "did you mean 'coco:environment'", True),
    ("ns-bare-lower", c("  nodepools: []"), "nodepools", "did you mean 'coco:nodePools'", True),
    ("ns-nested-coco", c("  coco:", "    environment: production"), "coco", "looks like a coco-stack key", True),
    ("ns-project-name", c("  coco-stack:environment: production"), "coco-stack:environment", "did you mean 'coco:environment'", True),
    ("ns-section-case", c("  coco:Environment: production"), "coco:Environment", "did you mean 'environment'", True),
    ("ns-section-typo", c("  coco:nodePool: []"), "coco:nodePool", "did you mean 'nodePools'", True),
    ("top-level-coco", "coco:environment: production\n", FILE, "indent it under 'config:'", False),
    ("top-level-coco-with-config", "config: {}\ncoco:kbs: {}\n", FILE, "at the top level", False),
    ("top-level-section", "nodePools: []\nconfig: {}\n", FILE, "at the top level", False),
    ("no-config", "encryptionsalt: v1:abc\n", FILE, "has no 'config:' mapping", False),
    ("empty-file", "", FILE, "has no 'config:' mapping", False),
    ("config-list", "config: [coco:environment]\n", FILE, "'config' is not a mapping", False),
    ("config-string", f"config: {SECRET}\n", FILE, "'config' is not a mapping", False),
    ("document-list", "- config\n", FILE, "is not a YAML mapping", False),
    ("document-scalar", f"{SECRET}\n", FILE, "is not a YAML mapping", False),
    # --- YAML structure: aliases, merge keys, keys ------------------------------------------
    ("alias-simple", c("  a: &x {provider: existing}", "  coco:cluster: *x"), "coco:cluster", "may not use anchors and aliases", True),
    ("alias-recursive", c("  coco:cluster: &c", "    x: *c"), "coco:cluster.x", "may not use anchors and aliases", False),
    ("alias-recursive-list", c("  coco:nodePools: &p [*p]"), "coco:nodePools[0]", "may not use anchors and aliases", False),
    ("alias-laughs-9", laughs(9), "coco:kbs.resources", "may not use anchors and aliases", False),
    ("alias-laughs-30", laughs(30), "coco:kbs.resources", "may not use anchors and aliases", False),
    ("alias-secret", c(*RES, f"  other: &s {SECRET}", "  more: *s"), "more", "may not use anchors and aliases", True),
    ("merge-with-other-error", c("  base: &b {tee: none, provider: baremetal}", "  coco:environment: prod", "  coco:nodePools:", "    - <<: *b", "      name: p"), "coco:nodePools[0]", "may not use merge keys", False),
    ("merge-reports-other-error", c("  base: &b {tee: none, provider: baremetal}", "  coco:environment: prod", "  coco:nodePools:", "    - <<: *b", "      name: p"), "coco:environment", "is not one of", False),
    ("merge-inline", c("  coco:cluster:", "    <<: {provider: existing}"), "coco:cluster", "may not use merge keys", True),
    ("key-int", c("  coco:kbs:", "    1: x"), "coco:kbs", "is not a string (int", True),
    ("key-bool", c("  coco:kbs:", "    true: x"), "coco:kbs", "is not a string (bool", True),
    ("key-yes", c("  coco:runtime:", "    yes: x"), "coco:runtime", "is not a string (bool", True),
    ("key-null", c("  coco:kbs:", "    ~: x"), "coco:kbs", "is not a string (empty)", True),
    ("key-float", c("  coco:cluster:", "    1.5: x"), "coco:cluster", "is not a string (float", True),
    ("key-mapping", c("  coco:kbs:", "    ? {a: 1}", "    : x"), "coco:kbs", "is not a string (a mapping)", True),
    ("key-list", c("  coco:kbs:", "    ? [a]", "    : x"), "coco:kbs", "is not a string (a list)", True),
    ("key-int-top", c("  42: x"), "config", "is not a string (int", True),
    ("key-int-selector", c("  coco:nodePools:", "    - {name: p, tee: none, provider: baremetal, nodeSelector: {1: a}}"), "coco:nodePools[0].nodeSelector", "is not a string (int", True),
    ("key-date", c("  coco:kbs:", "    referenceValues: {2024-01-01: x}"), "coco:kbs.referenceValues", "is not a string (timestamp", True),
    ("dup-top", c("  coco:environment: production", "  coco:environment: dev"), "coco:environment", "duplicate key", True),
    ("dup-nested", c("  coco:cluster:", "    provider: existing", "    provider: k3s"), "coco:cluster.provider", "duplicate key", True),
    ("dup-secret", c(*RES, f"        value: {SECRET}-2"), "coco:kbs.resources[0].value", "duplicate key", False),
    ("dup-config", "config: {}\nconfig: {}\n", "config", "duplicate key", True),
    ("deep-mapping", nested(40), "coco:runtime.k0.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11.k12.k13.k14.k15.k16.k17.k18.k19.k20.k21.k22.k23.k24.k25.k26.k27.k28.k29.k30", "nested more than 32 levels", False),
    ("deep-flow", c("  coco:kbs: " + "[" * 3000 + "]" * 3000), FILE, "invalid YAML at line 2", False),
    ("too-large", c(*RES, "  coco:image:", "    recipe: " + "x" * (1024 * 1024)), FILE, "more than the 1048576 bytes", False),
    ("recipe-not-toml", c("  coco:image: {recipe: /etc/passwd}"), "coco:image.recipe", "not valid TOML", True),
    ("recipe-binary", c("  coco:image: {recipe: /bin/sh}"), "coco:image.recipe", "not a TOML recipe", True),
    ("recipe-directory", c("  coco:image: {recipe: /tmp}"), "coco:image.recipe", "is a directory", True),
    ("recipe-device", c("  coco:image: {recipe: /dev/zero}"), "coco:image.recipe", "is not a regular file (a character device)", True),
    ("recipe-not-toml-peer-pods", c("  coco:environment: dev", "  coco:cluster: {provider: eks, name: c, region: eu-west-1}", "  coco:nodePools:", "    - {name: snp, tee: snp, mode: peer-pods, instanceType: m6a.large}", "  coco:image: {recipe: /etc/passwd}"), "coco:image.recipe", "not valid TOML", True),
    # --- host addresses ---------------------------------------------------------------------
    ("dup-host-ipv4-mapped", two_pools("10.0.0.1", "::ffff:10.0.0.1"), "coco:nodePools[1].hosts[0].address", "is already listed", True),
    ("dup-host-ipv4-mapped-hex", two_pools("::ffff:a00:1", "10.0.0.1"), "coco:nodePools[1].hosts[0].address", "is already listed", True),
    ("dup-host-ipv4-mapped-long", two_pools("0:0:0:0:0:ffff:10.0.0.1", "::FFFF:10.0.0.1"), "coco:nodePools[1].hosts[0].address", "is already listed", True),
    ("host-typo-k3s-server", c("  coco:environment: dev", "  coco:cluster: {provider: k3s, server: a.example}", "  coco:nodePools:", "    - {name: a, tee: none, provider: baremetal, hosts: [{address: 'a.example ', sshKey: {secure: v1:AAAA}}]}", "    - {name: b, tee: none, provider: baremetal, hosts: [{address: b.example, sshKey: {secure: v1:AAAA}}]}"), "coco:nodePools[0].hosts[0].address", "is not a host name", True),
    ("host-k3s-server-mapped", c("  coco:environment: dev", "  coco:cluster: {provider: k3s, server: '::ffff:10.0.0.1'}", "  coco:nodePools:", "    - {name: a, tee: none, provider: baremetal, hosts: [{address: 10.0.0.1, sshKey: {secure: v1:AAAA}}]}", "  coco:kbs: {resources: [{path: a/b/c, value: 5}]}"), "coco:kbs.resources[0].value", "expected a string", True),
    ("region-typo-eks-cluster", c("  coco:environment: dev", "  coco:cluster: {provider: eks, name: c, region: eu-wset-1}", "  coco:nodePools:", "    - {name: snp, tee: snp, mode: peer-pods, instanceType: m6a.large, zone: eu-west-1a}", "  coco:image: {podvmImage: ami-0123456789abcdef0}"), "coco:cluster.region", "did you mean 'eu-west-1'", True),
    ("region-typo-eks-two-pools", c("  coco:environment: dev", "  coco:cluster: {provider: eks, name: c, region: us-esat-2}", "  coco:nodePools:", "    - {name: a, tee: snp, mode: nodes, instanceType: m6a.xlarge, zone: us-east-2a}", "    - {name: b, tee: snp, mode: nodes, instanceType: m6a.xlarge, zone: us-east-2b}"), "coco:cluster.region", "did you mean 'us-east-2'", True),
    ("region-malformed-eks-cluster", c("  coco:environment: dev", "  coco:cluster: {provider: eks, name: c, region: 'eu west 1'}", "  coco:nodePools:", "    - {name: snp, tee: snp, mode: peer-pods, instanceType: m6a.large, zone: eu-west-1a}", "  coco:image: {podvmImage: ami-0123456789abcdef0}"), "coco:cluster.region", "is not an aws region name", True),
    ("region-typo-pool-zone", c("  coco:environment: dev", "  coco:cluster: {provider: eks, name: c, region: eu-west-1}", "  coco:nodePools:", "    - {name: snp, tee: snp, mode: peer-pods, instanceType: m6a.large, zone: eu-wset-1a}", "  coco:image: {podvmImage: ami-0123456789abcdef0}"), "coco:nodePools[0].zone", "is not in the EKS cluster's region", False),
    ("host-ipv4-256", c(*pool(*host("256.1.1.1"))), "coco:nodePools[0].hosts[0].address", "not a valid IPv4 address", True),
    ("host-ipv4-three", c(*pool(*host("1.2.3"))), "coco:nodePools[0].hosts[0].address", "not a valid IPv4 address", True),
    ("host-ipv4-five", c(*pool(*host("10.0.0.1.5"))), "coco:nodePools[0].hosts[0].address", "not a valid IPv4 address", True),
    ("host-ipv4-leading-zero", c(*pool(*host("010.0.0.1"))), "coco:nodePools[0].hosts[0].address", "not a valid IPv4 address", True),
    ("host-ipv4-hex", c(*pool(*host("'0x7f000001'"))), "coco:nodePools[0].hosts[0].address", "not a valid IPv4 address", True),
    ("host-ipv4-number", c(*pool(*host("'2130706433'"))), "coco:nodePools[0].hosts[0].address", "not a valid IPv4 address", True),
    ("host-space", c(*pool(*host("'node 1.example'"))), "coco:nodePools[0].hosts[0].address", "is not a host name or IP address", True),
    ("host-empty-label", c(*pool(*host("a..example"))), "coco:nodePools[0].hosts[0].address", "is not a host name or IP address", True),
    ("host-leading-dash", c(*pool(*host("-a.example"))), "coco:nodePools[0].hosts[0].address", "is not a host name or IP address", True),
    ("host-zone-id", c(*pool(*host("'fe80::1%eth0'"))), "coco:nodePools[0].hosts[0].address", "is not a host name or IP address", True),
    ("host-with-port", c(*pool(*host("'[fe80::1]:22'"))), "coco:nodePools[0].hosts[0].address", "is not a host name or IP address", True),
    ("host-bracket-v4", c(*pool(*host("'[10.0.0.1]'"))), "coco:nodePools[0].hosts[0].address", "is not a host name or IP address", True),
    ("host-int", c(*pool(*host("10"))), "coco:nodePools[0].hosts[0].address", "expected a string, got an integer", True),
    ("dup-host-case", two_pools("Node1.example", "node1.EXAMPLE."), "coco:nodePools[1].hosts[0].address", "is already listed at coco:nodePools[0].hosts[0].address", True),
    ("dup-host-v6-zeros", two_pools("::1", "0:0:0:0:0:0:0:1"), "coco:nodePools[1].hosts[0].address", "is already listed", True),
    ("dup-host-v6-case", two_pools("fe80::1", "FE80::1"), "coco:nodePools[1].hosts[0].address", "is already listed", True),
    ("host-v6-brackets", two_pools("[fe80::1]", "fe80::1"), "coco:nodePools[0].hosts[0].address", "is not a host name or IP address", True),
    ("dup-host-v6-mapped", two_pools("fd00:0::11", "fd00::0:11"), "coco:nodePools[1].hosts[0].address", "is already listed", True),
    ("dup-host-idna", two_pools("bücher.example", "xn--bcher-kva.example"), "coco:nodePools[1].hosts[0].address", "is already listed", True),
    ("dup-host-same-pool", c(*pool(*host("'::1'"), *host("'0::1'"))), "coco:nodePools[0].hosts[1].address", "is already listed", True),
    ("k3s-server-bad-ip", c("  coco:cluster: {provider: k3s, server: 300.0.0.1}"), "coco:cluster.server", "not a valid IPv4 address", False),
    ("prod-host-no-hostkey", c(*pool(*host("10.0.0.1"), env="production")), "coco:nodePools[0].hosts[0].hostKey", "need a pinned SSH host key", False),
    # --- one mistake, one error: wrong shapes and misspelt keys ------------------------------
    ("refvalue-mapping", c("  coco:kbs:", "    referenceValues:", "      mr_td: {sha384: abc}"), "coco:kbs.referenceValues.mr_td", "got a mapping", True),
    ("refvalue-list-of-maps", c("  coco:kbs:", "    referenceValues:", "      mr_td: [{a: 1}]"), "coco:kbs.referenceValues.mr_td", "got a list", True),
    ("refvalue-null", c("  coco:kbs:", "    referenceValues:", "      mr_td: ~"), "coco:kbs.referenceValues.mr_td", "got null", True),
    ("refvalues-list", c("  coco:kbs:", "    referenceValues: [a, b]"), "coco:kbs.referenceValues", "expected a mapping", True),
    ("chart-source-string", c("  coco:charts:", "    runtime: ./charts/x"), "coco:charts.runtime", "expected a mapping", True),
    ("mirror-int", c("  coco:kbs:", "    kataGuest: {cmdline: x, mirror: 5}"), "coco:kbs.kataGuest.mirror", "expected a string", True),
    ("vcpus-strings", c("  coco:kbs:", "    kataGuest: {cmdline: x, vcpus: [a]}"), "coco:kbs.kataGuest.vcpus[0]", "expected an integer", True),
    ("selector-int-value", c("  coco:nodePools:", "    - {name: p, tee: none, provider: baremetal, nodeSelector: {a: 1}}"), "coco:nodePools[0].nodeSelector.a", "expected a string", True),
    ("typo-sshkey-secure", c(*pool("        - address: 10.0.0.1", "          sshkey: {secure: v1:AAAA}")), "coco:nodePools[0].hosts[0].sshkey", "did you mean 'sshKey'", True),
    ("typo-sshkey-plain", c(*pool("        - address: 10.0.0.1", f"          sshkey: {SECRET}")), "coco:nodePools[0].hosts[0].sshkey", "did you mean 'sshKey'", True),
    ("typo-ssh-key", c(*pool("        - address: 10.0.0.1", "          ssh_key: {secure: v1:AAAA}")), "coco:nodePools[0].hosts[0].ssh_key", "did you mean 'sshKey'", True),
    ("typo-tee", c("  coco:nodePools:", "    - {name: p, tea: none, provider: baremetal, nodeSelector: {a: b}}"), "coco:nodePools[0].tea", "did you mean 'tee'", True),
    ("typo-name", c("  coco:nodePools:", "    - {Name: p, tee: none, provider: baremetal, nodeSelector: {a: b}}"), "coco:nodePools[0].Name", "did you mean 'name'", True),
    ("typo-resource-value", c("  coco:kbs:", "    resources:", "      - path: default/key/1", "        valeu: {secure: v1:AAAA}"), "coco:kbs.resources[0].valeu", "did you mean 'value'", True),
    ("typo-resources", c("  coco:kbs:", f"    resource: [{{path: a/b/c, value: {SECRET}}}]"), "coco:kbs.resource", "did you mean 'resources'", True),
    # --- stack names --------------------------------------------------------------------------
    ("stack-dotdot", ("Pulumi....yaml", c("  coco:environment: dev")), FILE, "is not a valid stack name", False),
    ("stack-dot", ("Pulumi...yaml", c("  coco:environment: dev")), FILE, "is not a valid stack name", False),
    ("stack-space", ("Pulumi.my stack.yaml", c("  coco:environment: dev")), FILE, "is not a valid stack name", False),
    ("stack-digit-first", ("Pulumi.1st.yaml", c("  coco:environment: dev")), FILE, "is not a valid stack name", False),
    ("stack-too-long", ("Pulumi." + "s" * 101 + ".yaml", c("  coco:environment: dev")), FILE, "is not a valid stack name", False),
    ("stack-unicode", ("Pulumi.stäck.yaml", c("  coco:environment: dev")), FILE, "is not a valid stack name", False),
    # --- the classes refused before issue 18, kept refused -----------------------------------
    ("env-typo", c("  coco:environment: prod"), "coco:environment", "did you mean 'production'", True),
    ("env-int", c("  coco:environment: 1"), "coco:environment", "is not one of", True),
    ("tee-unknown", c("  coco:nodePools:", "    - {name: p, tee: sev-snp, provider: baremetal, nodeSelector: {a: b}}"), "coco:nodePools[0].tee", "is not one of", True),
    ("pool-name-bad", c("  coco:nodePools:", "    - {name: Pool_1, tee: none, provider: baremetal, nodeSelector: {a: b}}"), "coco:nodePools[0].name", "is not a DNS label", True),
    ("pool-name-dup", c("  coco:nodePools:", "    - {name: p, tee: none, provider: baremetal, nodeSelector: {a: b}}", "    - {name: p, tee: none, provider: baremetal, nodeSelector: {c: d}}"), "coco:nodePools[1].name", "already used", False),
    ("pool-port-range", c(*pool(*host("10.0.0.1", extra="port: 70000"))), "coco:nodePools[0].hosts[0].port", "out of range", True),
    ("pool-user", c(*pool(*host("10.0.0.1", extra="user: admin"))), "coco:nodePools[0].hosts[0].user", "does not use sudo", True),
    ("resource-path-dotdot", c("  coco:kbs:", "    resources:", "      - path: ../../etc", "        value: {secure: v1:AAAA}"), "coco:kbs.resources[0].path", "invalid segment", True),
    ("resource-path-short", c("  coco:kbs:", "    resources:", "      - path: a/b", "        value: {secure: v1:AAAA}"), "coco:kbs.resources[0].path", "exactly three", True),
    ("resource-missing-value", c("  coco:kbs:", "    resources:", "      - path: a/b/c"), "coco:kbs.resources[0].value", "required key is missing", True),
    ("kbs-expose", c("  coco:kbs: {expose: public}"), "coco:kbs.expose", "is not one of", True),
    ("kbs-storage", c("  coco:kbs: {storageSize: 1GB}"), "coco:kbs.storageSize", "", True),
    ("kbs-nodeport", c("  coco:kbs: {expose: nodeport, nodePort: 80}"), "coco:kbs.nodePort", "out of range", True),
    ("prod-allow-all", c("  coco:environment: production", "  coco:kbs: {resourcePolicy: allow-all}"), "coco:kbs.resourcePolicy", "", False),
    ("unknown-section", c("  coco:kbss: {}"), "coco:kbss", "did you mean 'kbs'", True),
    ("cluster-provider", c("  coco:cluster: {provider: openshift}"), "coco:cluster.provider", "is not one of", True),
    ("k8s-version", c("  coco:cluster: {kubernetesVersion: '2.0'}"), "coco:cluster.kubernetesVersion", "is not a Kubernetes version", True),
    ("runtime-debug-string", c("  coco:runtime: {debug: 'yes'}"), "coco:runtime.debug", "expected true or false", True),
    ("pools-mapping", c("  coco:nodePools: {name: p}"), "coco:nodePools", "expected a list", True),
    ("scratch-size-zero", c("  coco:environment: dev", "  coco:cluster: {provider: eks, name: c, region: eu-west-1}", "  coco:nodePools:", "    - {name: snp, tee: snp, mode: peer-pods, instanceType: m6a.large, zone: eu-west-1a}", "  coco:image: {recipe: podvm, scratchSpace: {sizeGib: 0}}"), "coco:image.scratchSpace.sizeGib", "greater than or equal to 1", True),
    ("scratch-size-quoted", c("  coco:environment: dev", "  coco:cluster: {provider: eks, name: c, region: eu-west-1}", "  coco:nodePools:", "    - {name: snp, tee: snp, mode: peer-pods, instanceType: m6a.large, zone: eu-west-1a}", "  coco:image: {recipe: podvm, scratchSpace: {sizeGib: '20'}}"), "coco:image.scratchSpace.sizeGib", "integer", True),
    ("scratch-size-units", c("  coco:environment: dev", "  coco:cluster: {provider: eks, name: c, region: eu-west-1}", "  coco:nodePools:", "    - {name: snp, tee: snp, mode: peer-pods, instanceType: m6a.large, zone: eu-west-1a}", "  coco:image: {recipe: podvm, scratchSpace: {sizeGib: 20Gi}}"), "coco:image.scratchSpace.sizeGib", "integer", True),
    ("scratch-enabled-yes-string", c("  coco:environment: dev", "  coco:cluster: {provider: eks, name: c, region: eu-west-1}", "  coco:nodePools:", "    - {name: snp, tee: snp, mode: peer-pods, instanceType: m6a.large, zone: eu-west-1a}", "  coco:image: {recipe: podvm, scratchSpace: {enabled: 'yes'}}"), "coco:image.scratchSpace.enabled", "boolean", True),
    ("scratch-without-cloud-peer-pods", c("  coco:environment: dev", "  coco:cluster: {provider: existing}", "  coco:nodePools:", "    - {name: m, tee: none, nodeSelector: {a: b}}", "  coco:image: {recipe: podvm, scratchSpace: {enabled: true}}"), "coco:image.scratchSpace", "only to azure, aws or gcp peer-pods pools", True),
    ("scratch-recipe-without-units", c("  coco:environment: dev", "  coco:cluster: {provider: eks, name: c, region: eu-west-1}", "  coco:nodePools:", "    - {name: snp, tee: snp, mode: peer-pods, instanceType: m6a.large, zone: eu-west-1a}", "  coco:image: {recipe: minimal, scratchSpace: {enabled: true}}"), "coco:image.scratchSpace.enabled", "does not ship the scratch-space units", True),
]


@dataclass
class Outcome:
    """What loading and validating one case gave."""

    error: BaseException | None
    issues: list[ConfigIssue]  # errors and warnings (SpecError); empty for StackFileError
    seconds: float

    @property
    def messages(self) -> list[str]:
        texts = [str(self.error)] if self.error is not None else []
        hint = getattr(self.error, "hint", "")
        texts += [hint] if hint else []
        return texts + [i.render() for i in self.issues]


def run(text: Text, folder: Path) -> Outcome:
    """Write the case as a stack file in `folder` and load and validate it as `coco check`
    does, timing both."""
    name = "Pulumi.hostile.yaml"
    if isinstance(text, tuple):
        name, text = text
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    start = time.perf_counter()
    try:
        sf = stackfile.load(str(path))
        _, warnings = validate(sf.config, stack=sf.name, secure_paths=sf.secure_paths,
                               base_dir=str(sf.project_dir))
    except SpecError as exc:
        return Outcome(exc, exc.issues + exc.warnings, time.perf_counter() - start)
    except StackFileError as exc:
        return Outcome(exc, [], time.perf_counter() - start)
    except Exception as exc:  # a crash: what the corpus exists to catch
        return Outcome(exc, [], time.perf_counter() - start)
    finally:
        path.unlink()
    return Outcome(None, warnings, time.perf_counter() - start)
