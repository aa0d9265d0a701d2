"""Helm releases the stack installs: one way to pin and upgrade them.

Every chart is a `helm.v3.Release` (why not `helm.v4.Chart`: components/runtime.py) pinned by
exact version from spec/versions.py, upgraded atomically (a failed upgrade rolls back),
cleaned up on a failed install, with a bounded history.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

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
    timeout: int = 900,
) -> k8s.helm.v3.Release:
    """A pinned release of `chart` (an OCI reference, or a chart name in the Helm repo `repo`)."""
    return k8s.helm.v3.Release(
        resource_name,
        k8s.helm.v3.ReleaseArgs(
            name=release_name,
            chart=chart.name if repo else chart.reference,
            version=chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repo) if repo else None,
            namespace=namespace,
            values=values,
            atomic=True,
            cleanup_on_fail=True,
            max_history=10,
            timeout=timeout,
        ),
        opts=opts,
    )
