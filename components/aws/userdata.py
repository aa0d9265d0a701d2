"""Node labels EKS cannot set, handed to the kubelet through launch-template user data.

The EKS API refuses empty label values (CreateNodegroup / UpdateLabelsPayload: "Value Length
Constraints: Minimum length of 1", docs.aws.amazon.com/eks/latest/APIReference/
API_UpdateLabelsPayload.html), but coco-stack's worker label is `node.kubernetes.io/worker=`
(spec.labels). The kubelet may set labels under node.kubernetes.io/ on its own node
(NodeRestriction admission, kubernetes.io/docs/reference/access-authn-authz/admission-controllers/
#noderestriction), so those labels go to `--node-labels` in an AL2023 nodeadm NodeConfig, which
EKS merges with its own bootstrap user data when the node group uses an EKS AMI type
(docs.aws.amazon.com/eks/latest/userguide/launch-templates.html, "Amazon Linux 2023" user data;
MIME multi-part with content type application/node.eks.aws).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

BOUNDARY = "COCOSTACK"


def split(labels: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(labels the EKS API takes, labels for the kubelet: empty values)."""
    api: dict[str, str] = {k: v for k, v in sorted(labels.items()) if v}
    kubelet: dict[str, str] = {k: v for k, v in sorted(labels.items()) if not v}
    return api, kubelet


def node_labels(labels: Mapping[str, str]) -> str | None:
    """Base64 launch-template user data setting `labels` through the kubelet; None if none."""
    if not labels:
        return None
    flag = "--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    text = (
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"\n'
        "\n"
        f"--{BOUNDARY}\n"
        "Content-Type: application/node.eks.aws\n"
        "\n"
        "---\n"
        "apiVersion: node.eks.aws/v1alpha1\n"
        "kind: NodeConfig\n"
        "spec:\n"
        "  kubelet:\n"
        "    flags:\n"
        f"      - {flag}\n"
        "\n"
        f"--{BOUNDARY}--\n"
    )
    return base64.b64encode(text.encode()).decode()
