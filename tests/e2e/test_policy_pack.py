"""The CrossGuard policy pack (policy/) run by the real engine: `pulumi preview --policy-pack`.

The pack runs from a copy of policy/ whose PulumiPolicy.yaml points at this checkout's venv
(pulumi-policy is a dev dependency), so the CLI creates no venv and downloads nothing.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.pulumi_cli import ROOT, harness
from tests.e2e.test_stack import make_project

KBS_CONFIG_HTTP = """[http_server]
sockets = ["0.0.0.0:8080"]
insecure_http = true

[admin]
authorization_mode = "AuthenticatedAuthorization"
"""

# A program that registers what an insecure KBS would: coco-stack's own program refuses such a
# KBS in production before registering anything (spec.rules), so the pack is the second line,
# for stacks built by other programs or by hand-edited components.
INSECURE_PROGRAM = f'''
import pulumi_kubernetes as k8s
k8s.core.v1.ConfigMap(
    "kbs-config",
    metadata={{"name": "kbs-config", "namespace": "default"}},
    data={{"kbs-config.toml": {KBS_CONFIG_HTTP!r}}},
)
'''


def policy_pack(tmp: Path) -> Path:
    pack = tmp / "policy"
    shutil.copytree(ROOT / "policy", pack, ignore=shutil.ignore_patterns("venv", "__pycache__"))
    manifest = yaml.safe_load((pack / "PulumiPolicy.yaml").read_text())
    manifest["runtime"]["options"]["virtualenv"] = str(Path(sys.prefix))
    (pack / "PulumiPolicy.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return pack


def test_dev_stack_passes(tmp_path: Path, bins: list[Path], cluster: harness.Cluster) -> None:
    from tests.e2e.test_stack import STAND_IN_CHART, dev_config

    project = make_project(tmp_path, "e2e-policy-dev", dev_config(), bins, cluster)
    project.config_set("coco:kbs.resources[0].value", "policy pack", secret=True)
    project.config_set("coco:charts.runtime.path", str(STAND_IN_CHART))
    done = project.run("preview", "--policy-pack", str(policy_pack(tmp_path)))
    # the pack ran on the real registrations: advisory in dev (the coco-dev runtime is flagged,
    # nothing stops the preview)
    assert "coco-stack@v0.1.0" in done.stdout
    assert "[advisory]  no-coco-dev-runtime" in done.stdout
    assert "[mandatory]" not in done.stdout


def test_production_insecure_kbs_is_stopped(
    tmp_path: Path, bins: list[Path], cluster: harness.Cluster
) -> None:
    project = make_project(
        tmp_path, "e2e-policy-prod", {"coco:environment": "production"}, bins, cluster
    )
    (project.dir / "__main__.py").write_text(INSECURE_PROGRAM)
    done = project.run("preview", "--policy-pack", str(policy_pack(tmp_path)), ok=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "[mandatory]" in out
    assert "plain HTTP" in out


@pytest.fixture(scope="module")
def bins() -> list[Path]:
    from tests.e2e.pulumi_cli import bin_dirs

    return bin_dirs()
