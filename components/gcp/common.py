"""Names and labels every GCP resource of the stack shares.

Scope: the `coco-stack-tee` resource label the CrossGuard policies look for, GCP-safe names
derived from the stack's cluster name, and the project every resource names explicitly.
Non-goals: anything that registers resources.
"""

from __future__ import annotations

import hashlib
import re

from spec.model import Spec

# GCP label key marking a confidential pool, VM or image; value: the TEE. Label keys allow only
# [a-z0-9_-] (cloud.google.com/compute/docs/labeling-resources), hence no "coco-stack.io/tee".
# The policies in policy/coco_policies.py (MARKER_TAG) read the same key.
TEE_LABEL = "coco-stack-tee"
# Every GCP resource the stack creates also carries this label (a reviewer can find them all).
PART_OF_LABEL = {"app-kubernetes-io-part-of": "coco-stack"}


def project(spec: Spec) -> str:
    """coco:cluster.project; spec.rules refuses a gke cluster without it."""
    if spec.cluster.project is None:
        raise ValueError("coco:cluster.project is required for gke (checked by spec.rules)")
    return spec.cluster.project


def cluster_name(spec: Spec) -> str:
    """The GKE cluster's name: coco:cluster.name, else the stack name made a DNS label."""
    return spec.cluster.name or gcp_name(spec.stack, 40)


def location(spec: Spec) -> str:
    """Where the cluster lives: its zone (zonal cluster) or its region (regional cluster)."""
    where = spec.cluster.zone or spec.cluster.region
    if where is None:
        raise ValueError("gke needs coco:cluster.region or .zone (checked by spec.rules)")
    return where


def gcp_name(text: str, limit: int = 63) -> str:
    """A GCP resource name ([a-z]([-a-z0-9]*[a-z0-9])?) of at most `limit` characters.

    Lowercases, turns other characters into '-', and when it has to shorten or change the text
    appends 6 hex digits of its sha256, so two different inputs do not collide.
    """
    clean = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "coco"
    if not clean[0].isalpha():
        clean = f"c-{clean}"
    if clean == text and len(clean) <= limit:
        return clean
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{clean[: limit - 7].rstrip('-')}-{digest}"
