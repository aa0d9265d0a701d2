"""`coco render` and the program under mocks: graph, determinism, secrets, refusals."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import render
from spec import stackfile, support
from spec.errors import NotYetSupported, RenderError, SpecError
from tests.conftest import ROOT, STACKS, assert_valid_kubernetes, one

BASE = {
    "coco:environment": "dev",
    "coco:cluster": {"provider": "existing"},
    "coco:nodePools": [
        {"name": "dev", "tee": "none", "mode": "bare-metal", "nodeSelector": {"a": "b"}}
    ],
    "coco:kbs": {},
}


def _tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


class TestGraph:
    """The dev stack registers the top component, the cluster provider, the pool and the KBS,
    parented as the recipe says."""

    def test_dev_graph(self, render_stack):
        result = render_stack("dev")
        top = one(result, "coco:index:CocoStack")
        assert top.parent_urn.endswith("pulumi:pulumi:Stack::coco-dev")
        names = result.by_name()
        for name, parent in [
            ("coco-cluster", "coco"),
            ("coco-cluster-k8s", "coco-cluster"),
            ("coco-pool-dev", "coco"),
            ("coco-kbs", "coco"),
            ("coco-kbs-namespace", "coco-kbs"),
            ("coco-kbs-resources", "coco-kbs"),
        ]:
            assert names[name].parent_urn == names[parent].urn, name
        secret = one(result, "kubernetes:core/v1:Secret", "coco-kbs-resources")
        namespace = one(result, "kubernetes:core/v1:Namespace", "coco-kbs-namespace")
        assert namespace.urn in secret.dependencies
        assert (
            namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
            == "restricted"
        )

    def test_in_cluster_resources_use_the_cluster_provider(self, render_stack):
        result = render_stack("dev")
        provider = one(result, "pulumi:providers:kubernetes")
        in_cluster = [
            r
            for r in result.registrations
            if r.custom and r.type.startswith("kubernetes:") and "providers" not in r.type
        ]
        # KBS: namespace, service account, deployment, service, PVC, 3 ConfigMaps, 2 Secrets;
        # runtime: namespace, chart and one RuntimeClass
        assert len(in_cluster) == 13
        for r in in_cluster:
            assert r.provider.startswith(provider.urn + "::"), r.name
        assert provider.parent_urn == result.by_name()["coco-cluster"].urn

    def test_outputs(self, render_stack):
        result = render_stack("mixed")
        assert result.outputs["runtimeClasses"] == {
            "dev": "kata-qemu-coco-dev",
            "snp": "kata-qemu-snp",
            "tdx": "kata-qemu-tdx",
        }
        assert result.outputs["pools"]["snp"]["initdataBinding"] == "snp-host-data"
        assert result.outputs["pools"]["tdx"]["initdataBinding"] == "tdx-mrconfigid"
        assert result.outputs["kbsNamespace"] == "trustee"

    def test_kbs_disabled_registers_no_kbs(self, render_config):
        result = render_config({**BASE, "coco:kbs": {"enabled": False}})
        assert not [
            r for r in result.registrations
            if r.type.startswith("coco:kbs") or r.name.startswith("coco-kbs")
        ]
        assert "kbsNamespace" not in result.outputs


class TestKubernetesObjects:
    """Every Kubernetes object the project authors is valid for the targeted version."""

    @pytest.mark.parametrize("stack", STACKS)
    def test_sample_stacks_validate(self, render_stack, stack):
        result = render_stack(stack)
        assert assert_valid_kubernetes(result) >= 1

    def test_validation_catches_a_bad_object(self, render_stack):
        import kubernetes_validate

        obj = render_stack("dev").kubernetes_objects()[0]
        obj["spec"] = {"bogus": True}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(obj, "1.34.0", strict=True)


class TestDeterminism:
    """The same stack renders to the same bytes, across processes and hash seeds."""

    def test_two_cli_runs_identical(self, tmp_path):
        outs = []
        for seed in ("1", "2"):
            out = tmp_path / f"out{seed}"
            env = {**os.environ, "PYTHONHASHSEED": seed}
            subprocess.run(
                [sys.executable, "-m", "cli.main", "render", "dev", "--out", str(out)],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            outs.append(_tree(out))
        assert outs[0] == outs[1]
        assert "resources.json" in outs[0]
        assert any(k.startswith("manifests/") for k in outs[0])

    def test_rerender_replaces_stale_manifests(self, tmp_path, render_stack):
        result = render_stack("dev")
        render.write(result, tmp_path)
        stale = tmp_path / "manifests" / "stale.yaml"
        stale.write_text("old")
        render.write(result, tmp_path)
        assert not stale.exists()
        assert (tmp_path / "resources.json").exists()

    def test_refuses_foreign_manifests_folder(self, tmp_path, render_stack):
        """--out pointing at a folder with someone else's manifests/ must not delete them."""
        mine = tmp_path / "manifests" / "my-app.yaml"
        mine.parent.mkdir(parents=True)
        mine.write_text("mine")
        with pytest.raises(RenderError):
            render.write(render_stack("dev"), tmp_path)
        assert mine.read_text() == "mine"

    def test_checkout_path_and_interpreter_do_not_reach_the_document(self, render_stack):
        # the image build command names the recipe, output folder and interpreter by path:
        # two checkouts (or `coco render --diff REF`) must still render the same bytes
        text = render.dumps_json(render_stack("azure-cvm").document())
        assert "<project>/images/recipes/" in text and "<python>" in text
        assert str(ROOT) not in text and sys.executable not in text

    def test_two_objects_with_one_file_name_are_refused(self, tmp_path, render_stack):
        result = render_stack("dev")
        twin = next(r for r in result.registrations if r.type == "kubernetes:core/v1:Namespace")
        result.registrations.append(twin)
        with pytest.raises(RenderError, match="render to manifests/namespace-_cluster-"):
            render.write(result, tmp_path)

    def test_document_sorted(self, render_stack):
        doc = render_stack("mixed").document()
        keys = [(r["type"], r["name"]) for r in doc["resources"]]
        assert keys == sorted(keys)
        assert doc["notice"].startswith("coco render output: NOT `pulumi preview`")


class TestSecrets:
    """Secret values are Pulumi secrets in resource inputs and never appear in render output."""

    def test_resource_values_and_kubeconfig(self, render_config, tmp_path):
        config = {
            **BASE,
            "coco:cluster": {"provider": "existing", "kubeconfig": "apiVersion: v1 # KUBE-SECRET"},
            "coco:kbs": {
                "resources": [
                    {"path": "default/key/1", "value": "TOP-SECRET-ONE"},
                    {"path": "default/key/2", "value": "TOP-SECRET-TWO"},
                ]
            },
        }
        secure = frozenset({"coco:cluster.kubeconfig", "coco:kbs.resources[0].value"})
        result = render_config(config, secure=secure)
        provider = one(result, "pulumi:providers:kubernetes")
        assert render.secret_paths(provider.inputs) == ["kubeconfig"]
        assert render.unwrap(provider.inputs)["kubeconfig"] == "apiVersion: v1 # KUBE-SECRET"
        secret = one(result, "kubernetes:core/v1:Secret", "coco-kbs-resources")
        assert "stringData" in render.secret_paths(secret.inputs)
        values = sorted(render.unwrap(secret.inputs)["stringData"].values())
        assert values == ["TOP-SECRET-ONE", "TOP-SECRET-TWO"]  # plain text value still secret

        out = tmp_path / "out"
        render.write(result, out)
        blob = b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())
        for needle in (b"TOP-SECRET", b"KUBE-SECRET"):
            assert needle not in blob
        assert b"[secret]" in blob

    def test_secure_values_in_stack_file_are_placeholders(self, tmp_path):
        (tmp_path / "Pulumi.yaml").write_text("name: coco\nruntime: python\n")
        path = tmp_path / "Pulumi.s.yaml"
        path.write_text(
            "config:\n"
            "  coco:cluster:\n"
            "    provider: existing\n"
            "    kubeconfig:\n"
            "      secure: AAABAKCIPHERTEXT\n"
            "  coco:nodePools:\n"
            "    - {name: dev, tee: none, nodeSelector: {a: b}}\n"
        )
        sf = stackfile.load(str(path))
        result = render.run(
            sf.config, stack=sf.name, secure_paths=sf.secure_paths, project_dir=tmp_path
        )
        provider = one(result, "pulumi:providers:kubernetes")
        assert render.secret_paths(provider.inputs) == ["kubeconfig"]
        text = render.dumps_json(result.document())
        assert "AAABAKCIPHERTEXT" not in text
        assert "[secure value of" not in text  # the placeholder itself is redacted too


class TestRefusals:
    """Bad or unsupported stacks stop before any resource is registered."""

    def test_invalid_config_registers_nothing(self, render_config, monkeypatch):
        calls = []
        import pulumi.runtime.mocks as mocks

        monkeypatch.setattr(mocks, "set_mocks", lambda *a, **k: calls.append(a))
        with pytest.raises(SpecError):
            render_config(
                {**BASE, "coco:nodePools": [{"name": "x", "tee": "tdx", "provider": "aws"}]}
            )
        assert calls == []

    def test_unsupported_cluster_registers_nothing(self, render_config, monkeypatch):
        calls = []
        import pulumi.runtime.mocks as mocks

        monkeypatch.setattr(mocks, "set_mocks", lambda *a, **k: calls.append(a))
        # a cloud whose package is not there (as before each cloud issue landed)
        monkeypatch.setattr(support, "_cloud_ready", lambda cloud: False)
        config = {
            **BASE,
            "coco:cluster": {"provider": "aks", "location": "westeurope"},
            "coco:nodePools": [{"name": "p", "tee": "snp"}],
            "coco:image": {"recipe": "minimal"},
        }
        with pytest.raises(NotYetSupported) as info:
            render_config(config)
        assert info.value.path == "coco:cluster.provider"
        assert calls == []

    def test_program_refuses_under_the_engine_too(self, render_config):
        """program.main (what `pulumi up` runs) validates before registering anything."""
        import pulumi
        from pulumi.runtime import set_all_config

        from components import program

        set_all_config(
            {"coco:nodePools": '[{"name": "x", "tee": "sgx", "mode": "bare-metal"}]'}, []
        )
        try:
            with pytest.raises(pulumi.RunError) as info:
                program.main(ROOT)
        finally:
            set_all_config({}, [])
        assert "coco:nodePools[0].tee" in str(info.value)
