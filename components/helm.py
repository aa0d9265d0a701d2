"""Helm releases the stack installs: one way to pin and upgrade them.

Every chart is a `helm.v3.Release` (why not `helm.v4.Chart`: components/runtime.py) pinned by
exact version from spec/versions.py, upgraded atomically (a failed upgrade rolls back),
cleaned up on a failed install, with a bounded history.

Where a chart comes from (`coco:charts`, docs/air-gapped.md): by default its upstream repository;
with `path` a local chart directory (`chart` is the absolute directory, no version or repository:
Helm reads the directory, whose name, version and digest spec.rules.charts checked before
anything was registered); with `repository` a private OCI mirror (`<mirror>/<name>` at the pinned
version).
"""

from __future__ import annotations

import os
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from spec.model import ChartSource
from spec.versions import ChartRef


def release(
    resource_name: str,
    release_name: str,
    chart: ChartRef,
    namespace: str,
    values: pulumi.Input[dict[str, Any]],
    opts: pulumi.ResourceOptions,
    *,
    repo: str | None = None,
    source: ChartSource | None = None,
    timeout: int = 900,
) -> k8s.helm.v3.Release:
    """A pinned release of `chart` (an OCI reference, or a chart name in the Helm repo `repo`),
    or of the same chart from `source`: a local directory (an absolute path) or an OCI mirror."""
    version: str | None = chart.version
    repository_opts = k8s.helm.v3.RepositoryOptsArgs(repo=repo) if repo else None
    reference = chart.name if repo else chart.reference
    if source is not None and source.path is not None:
        if not os.path.isabs(source.path):
            raise ValueError(f"chart path {source.path!r} is not absolute: resolve it first")
        reference, version, repository_opts = source.path, None, None
    elif source is not None and source.repository is not None:
        reference, repository_opts = f"{source.repository}/{chart.name}", None
    return k8s.helm.v3.Release(
        resource_name,
        k8s.helm.v3.ReleaseArgs(
            name=release_name,
            chart=reference,
            version=version,
            repository_opts=repository_opts,
            namespace=namespace,
            values=values,
            atomic=True,
            cleanup_on_fail=True,
            max_history=10,
            timeout=timeout,
        ),
        opts=opts,
    )
