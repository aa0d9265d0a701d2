"""Issue 17's cloud defects, refused or resolved by `coco check` before any resource exists:
GCP boot-disk types per machine series, AKS TDX node pools, NFD next to peer pods."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from spec import catalogue
from spec.errors import ConfigIssue, SpecError
from spec.validate import validate

GKE = {"provider": "gke", "project": "coco-test-123456", "zone": "europe-west4-a"}


def _issues(config: dict[str, Any]) -> list[ConfigIssue]:
    try:
        _, warnings = validate(config, stack="t")
    except SpecError as exc:
        return list(exc.issues)
    return list(warnings)


def _errors(config: dict[str, Any]) -> dict[str, ConfigIssue]:
    return {i.path: i for i in _issues(config) if i.severity == "error"}


def _gcp(*pools: dict[str, Any], mode: str = "peer-pods") -> dict[str, Any]:
    return {
        "coco:cluster": GKE,
        "coco:nodePools": [{"mode": mode, **p} for p in pools],
        "coco:image": {"recipe": "minimal"},
    }


class TestGcpDiskTypes:
    """A GCP pool's boot disk must be one its machine series accepts; pod VMs share one."""

    def test_table_covers_every_gcp_family_of_the_catalogue(self):
        families = {f for o in catalogue.OFFERINGS if o.provider == "gcp" for f in o.families}
        assert families <= set(catalogue.GCP_BOOT_DISK_TYPES)
        for series in ("c3", "c3d", "c4", "c4d", "n4"):  # cloud-api-adaptor#2258 and Hyperdisk
            assert "pd-standard" not in catalogue.GCP_BOOT_DISK_TYPES[series]
        for series in ("c4", "c4d", "n4"):
            assert catalogue.GCP_BOOT_DISK_TYPES[series] == ("hyperdisk-balanced",)

    @pytest.mark.parametrize(
        ("tee", "machine", "disk"),
        [("tdx", "c3-standard-4", "pd-standard"), ("sev", "c3d-standard-4", "pd-standard"),
         ("sev", "c4d-standard-4", "pd-balanced"), ("sev", "c4d-standard-4", "pd-ssd"),
         ("sev", "n2d-standard-4", "hyperdisk-balanced")],
    )
    @pytest.mark.parametrize("mode", ["peer-pods", "nodes"])
    def test_refused_with_key_path(self, tee, machine, disk, mode):
        errors = _errors(_gcp({"name": "p", "tee": tee, "instanceType": machine,
                               "diskType": disk}, mode=mode))
        issue = errors["coco:nodePools[0].diskType"]
        assert repr(disk) in issue.message and machine in issue.message
        accepted = catalogue.gcp_disk_types(machine)
        assert accepted and all(d in issue.hint for d in accepted)

    @pytest.mark.parametrize(
        ("machine", "disk"), [("c3-standard-4", "hyperdisk-balanced"), ("n2d-standard-4", "pd-ssd"),
                              ("c4d-standard-4", "hyperdisk-balanced")],
    )
    def test_accepted(self, machine, disk):
        tee = {"c3": "tdx", "n2d": "sev", "c4d": "sev"}[machine.split("-")[0]]
        spec, _ = validate(_gcp({"name": "p", "tee": tee, "instanceType": machine,
                                 "diskType": disk}), stack="t")
        assert spec.node_pools[0].disk_type == disk

    def test_tdx_ssd_warns(self):
        issues = _issues(_gcp({"name": "p", "tee": "tdx", "instanceType": "c3-standard-4",
                               "diskType": "pd-ssd"}))
        (warning,) = [i for i in issues if i.path == "coco:nodePools[0].diskType"]
        assert warning.severity == "warning"

    def test_not_a_gcp_pool(self):
        errors = _errors({
            "coco:cluster": {"provider": "aks", "location": "westeurope"},
            "coco:nodePools": [{"name": "p", "tee": "snp", "diskType": "pd-balanced"}],
            "coco:image": {"recipe": "minimal"},
        })
        assert "gcp" in errors["coco:nodePools[0].diskType"].message

    def test_pod_vms_need_one_type_in_common(self):
        """n2d (Persistent Disk) and c4d (Hyperdisk only) share no boot disk: one
        GCP_DISK_TYPE cannot boot both."""
        errors = _errors(_gcp({"name": "a", "tee": "sev", "instanceType": "n2d-standard-2"},
                              {"name": "b", "tee": "sev", "instanceType": "c4d-standard-4"}))
        issue = errors["coco:nodePools[1].instanceType"]
        assert "GCP_DISK_TYPE" in issue.message and "hyperdisk-balanced" in issue.message

    def test_pod_vms_share_the_users_type(self):
        errors = _errors(_gcp(
            {"name": "a", "tee": "sev", "instanceType": "c3d-standard-4", "diskType": "pd-ssd"},
            {"name": "b", "tee": "sev", "instanceType": "c4d-standard-4"},
        ))
        assert "pd-ssd" in errors["coco:nodePools[1].instanceType"].message
        errors = _errors(_gcp(
            {"name": "a", "tee": "sev", "instanceType": "c3d-standard-4", "diskType": "pd-ssd"},
            {"name": "b", "tee": "sev", "instanceType": "n2d-standard-4",
             "diskType": "pd-balanced"},
        ))
        assert "coco:nodePools[0].diskType" in errors["coco:nodePools[1].diskType"].message

    def test_nodes_pools_do_not_share(self):
        spec, _ = validate(_gcp({"name": "a", "tee": "sev", "instanceType": "n2d-standard-2"},
                                {"name": "b", "tee": "sev", "instanceType": "c4d-standard-4"},
                                mode="nodes"), stack="t")
        assert len(spec.node_pools) == 2


class TestGcpSnpPeerPods:
    """GCP creates SEV_SNP VMs only with minCpuPlatform "AMD Milan", which cloud-api-adaptor
    v0.22.0 never sets (gcp/provider.go CreateInstance): every pod VM would fail to start, so
    snp peer pods on GCP are refused at the pool's mode with the working alternatives."""

    @pytest.mark.parametrize("mode", [{"mode": "peer-pods"}, {}], ids=["explicit", "default"])
    def test_refused_at_the_pools_mode_with_the_alternatives(self, mode):
        errors = _errors({
            "coco:cluster": GKE,
            "coco:nodePools": [{"name": "tdx", "tee": "tdx"},
                               {"name": "snp", "tee": "snp", **mode}],
            "coco:image": {"recipe": "minimal"},
        })
        issue = errors["coco:nodePools[1].mode"]
        assert issue.message.startswith("snp peer-pods on gcp: ")
        assert '"AMD Milan"' in issue.message and "cloud-api-adaptor v0.22.0" in issue.message
        assert "use mode: nodes for SEV-SNP on GCP" in issue.hint
        assert "tee: tdx peer pods (C3)" in issue.hint
        assert [p for p in errors if p.startswith("coco:nodePools")] == ["coco:nodePools[1].mode"]

    def test_attached_cluster_too(self):
        errors = _errors({
            "coco:cluster": {"provider": "existing"},
            "coco:nodePools": [{"name": "snp", "tee": "snp", "mode": "peer-pods",
                                "provider": "gcp", "zone": "europe-west4-a",
                                "nodeSelector": {"node.kubernetes.io/worker": ""}}],
            "coco:image": {"recipe": "minimal"},
        })
        assert "AMD Milan" in errors["coco:nodePools[0].mode"].message

    def test_not_advertised(self):
        assert catalogue.find("gcp", "snp", "peer-pods") is None
        assert catalogue.modes_for("gcp", "snp") == ["nodes"]
        assert "gcp (nodes)" in catalogue.where_available("snp")
        refusal = catalogue.refused("gcp", "snp", "peer-pods")
        assert refusal is not None
        assert refusal.offering.platform["minCpuPlatform"] == "AMD Milan"
        assert refusal.issue.endswith("v0.22.0/src/cloud-providers/gcp/provider.go")

    def test_snp_nodes_still_accepted_with_the_cpu_platform(self):
        spec, _ = validate(_gcp({"name": "snp", "tee": "snp"}, mode="nodes"), stack="t")
        assert spec.node_pools[0].mode == "nodes"
        offering = catalogue.find("gcp", "snp", "nodes")
        assert offering is not None and offering.platform["minCpuPlatform"] == "AMD Milan"


class TestAksTdxNodes:
    """AKS refuses TDX confidential node pools (Azure/AKS#5618, open): refused with the issue
    and the working alternative, and offered nowhere else in the catalogue's answers."""

    def test_refused_naming_peer_pods_and_the_issue(self):
        errors = _errors({
            "coco:cluster": {"provider": "aks", "location": "westeurope"},
            "coco:nodePools": [{"name": "tdx", "tee": "tdx", "mode": "nodes"}],
        })
        issue = errors["coco:nodePools[0].mode"]
        assert "Azure/AKS#5618" in issue.message
        assert "mode: peer-pods" in issue.hint
        assert list(errors) == ["coco:nodePools[0].mode"]

    def test_attached_cluster_too(self):
        errors = _errors({
            "coco:cluster": {"provider": "existing"},
            "coco:nodePools": [{"name": "tdx", "tee": "tdx", "mode": "nodes", "provider": "azure",
                                "region": "westeurope", "nodeSelector": {"a": "b"}}],
        })
        assert "Azure/AKS#5618" in errors["coco:nodePools[0].mode"].message

    def test_not_advertised(self):
        assert catalogue.find("azure", "tdx", "nodes") is None
        assert catalogue.modes_for("azure", "tdx") == ["peer-pods"]
        assert "azure (peer-pods)" in catalogue.where_available("tdx")
        refusal = catalogue.refused("azure", "tdx", "nodes")
        assert refusal is not None and refusal.issue.endswith("/Azure/AKS/issues/5618")

    def test_tdx_peer_pods_and_snp_nodes_still_accepted(self):
        spec, _ = validate({
            "coco:cluster": {"provider": "aks", "location": "westeurope"},
            "coco:nodePools": [{"name": "tdx", "tee": "tdx"},
                               {"name": "snp", "tee": "snp", "mode": "nodes"}],
            "coco:image": {"recipe": "minimal"},
        }, stack="t")
        assert [p.mode for p in spec.node_pools] == ["peer-pods", "nodes"]


class TestNfdWithPeerPods:
    """kata-deploy 4.0.0 with its NFD runs only on VMX/SVM nodes, which cloud workers are not:
    the remote shim would never be installed."""

    @pytest.mark.parametrize(
        ("cluster", "pool"),
        [({"provider": "aks", "location": "westeurope"}, {"name": "p", "tee": "snp"}),
         (GKE, {"name": "p", "tee": "tdx"}),
         ({"provider": "existing"}, {"name": "p", "tee": "se", "provider": "ibmcloud",
                                     "region": "eu-de", "zone": "eu-de-1"})],
    )
    def test_refused_at_the_runtime_key(self, cluster, pool):
        errors = _errors({
            "coco:cluster": cluster,
            "coco:nodePools": [{"name": "bm", "tee": "none", "mode": "bare-metal",
                                "provider": "baremetal", "nodeSelector": {"a": "b"}}, pool]
            if cluster["provider"] == "existing" else [pool],
            "coco:runtime": {"nodeFeatureDiscovery": True},
            "coco:image": {"recipe": "minimal"},
        })
        issue = errors["coco:runtime.nodeFeatureDiscovery"]
        assert "peer-pods" in issue.message and "VMX or SVM" in issue.message
        assert "remove nodeFeatureDiscovery" in issue.hint

    def test_bare_metal_alone_keeps_nfd(self):
        spec, _ = validate({
            "coco:cluster": {"provider": "existing"},
            "coco:nodePools": [{"name": "snp", "tee": "snp", "mode": "bare-metal",
                                "nodeSelector": {"a": "b"}}],
            "coco:runtime": {"nodeFeatureDiscovery": True},
        }, stack="t")
        assert spec.runtime.node_feature_discovery is True


IBM = {"name": "se", "tee": "se", "provider": "ibmcloud", "region": "eu-de", "zone": "eu-de-1",
       "ibmcloud": {"vpcId": "v", "subnetId": "s", "imageId": "i", "resourceGroupId": "g",
                    "apiKey": "k"}}


class TestAttachedPeerPodWorkers:
    """CAA's daemonset (fixed nodeSelector) and the kata-remote RuntimeClass need workers
    labelled node.kubernetes.io/worker=""; nothing labels an attached cluster's nodes, so the
    pool must confirm it, and the refusal gives the exact command."""


    @pytest.mark.parametrize(
        ("cluster", "pool", "command", "durable"),
        [
            ({"provider": "existing"}, IBM, "kubectl label nodes -l "
             "ibm-cloud.kubernetes.io/worker-pool-name=default node.kubernetes.io/worker=",
             "`ibmcloud ks worker-pool label set --cluster CLUSTER --worker-pool POOL "
             "--label node.kubernetes.io/worker=` (it replaces the pool's custom labels"),
            ({**GKE, "attach": True, "name": "prod"}, {"name": "p", "tee": "tdx"},
             "kubectl label nodes -l cloud.google.com/gke-nodepool=POOL "
             "node.kubernetes.io/worker=",
             "`gcloud container node-pools update POOL --cluster=CLUSTER --location=LOCATION "
             "--node-labels=node.kubernetes.io/worker=` (it replaces the pool's Kubernetes "
             "labels"),
            ({"provider": "aks", "location": "westeurope", "attach": True, "name": "c",
              "resourceGroup": "rg"}, {"name": "p", "tee": "snp"},
             "kubectl label nodes -l agentpool=POOL node.kubernetes.io/worker=",
             "`az aks nodepool update --resource-group RG --cluster-name CLUSTER --name POOL "
             "--labels node.kubernetes.io/worker=` (it replaces the pool's labels"),
            ({"provider": "eks", "region": "eu-west-1", "attach": True, "name": "c"},
             {"name": "p", "tee": "snp"},
             "kubectl label nodes -l eks.amazonaws.com/nodegroup=NODEGROUP "
             "node.kubernetes.io/worker=",
             "the EKS API refuses empty label values, so give the managed node group's launch "
             "template the kubelet flag --node-labels=node.kubernetes.io/worker="),
        ],
    )
    def test_refused_with_the_commands(self, cluster, pool, command, durable):
        """The node-pool-level label is the durable one (the cloud re-applies it to nodes it
        recreates); kubectl labels today's nodes only, and says so."""
        config = {"coco:cluster": cluster, "coco:nodePools": [pool],
                  "coco:image": {"recipe": "minimal"}}
        issue = _errors(config)["coco:nodePools[0].nodeSelector"]
        assert f"`{command}` labels the current nodes at once but is lost when a node is " \
            "recreated" in issue.hint
        assert durable in issue.hint
        assert issue.hint.index(durable) < issue.hint.index(command)
        assert 'nodeSelector: {node.kubernetes.io/worker: ""}' in issue.hint
        selector = {"node.kubernetes.io/worker": ""}
        if cluster.get("provider") == "gke":
            selector["cloud.google.com/gke-os-distribution"] = "ubuntu"
        config["coco:nodePools"] = [{**pool, "nodeSelector": selector}]
        assert "coco:nodePools[0].nodeSelector" not in _errors(config)

    def test_existing_cluster_without_a_cloud_gets_kubectl_only(self):
        from spec.rules import clouds

        assert clouds.worker_pool_label_command(None) is None
        assert "gcloud" not in clouds._worker_label_hint(None)
        assert "`kubectl label nodes NODE_NAME... node.kubernetes.io/worker=`" in \
            clouds._worker_label_hint(None)


    def test_created_cluster_labels_its_own(self):
        spec, _ = validate({"coco:cluster": {"provider": "aks", "location": "westeurope"},
                            "coco:nodePools": [{"name": "p", "tee": "snp"}],
                            "coco:image": {"recipe": "minimal"}}, stack="t")
        assert spec.node_pools[0].node_selector is None

    def test_a_pool_selector_narrows_the_runtime_class_never_drops_the_worker_label(self):
        from spec import runtime_plan

        spec, _ = validate({
            "coco:cluster": {"provider": "existing"},
            "coco:nodePools": [{**IBM, "nodeSelector": {"node.kubernetes.io/worker": "",
                                                             "zone": "a"}}],
            "coco:image": {"recipe": "minimal"},
        }, stack="t", secure_paths=frozenset({"coco:nodePools[0].ibmcloud.apiKey"}))
        (plan,) = runtime_plan.runtime_classes(spec)
        assert plan.node_selector["node.kubernetes.io/worker"] == ""
        assert plan.node_selector["zone"] == "a"
        pool = spec.node_pools[0].model_copy(update={"node_selector": {"zone": "a"}})
        assert runtime_plan.pool_node_selector(pool, False) == {
            "node.kubernetes.io/worker": "", "zone": "a"}


class TestAttachedGkeUbuntuWorkers:
    """Container-Optimized OS (GKE's default image) has a read-only root where kata-deploy
    cannot install the remote shim (CAA test/provisioner/gcp/cluster.go@v0.22.0 makes
    UBUNTU_CONTAINERD pools); the stack picks Ubuntu only for pools it creates, so a peer-pods
    pool on an attached GKE cluster must confirm Ubuntu workers by their GKE OS label."""

    WORKER: ClassVar[dict[str, str]] = {"node.kubernetes.io/worker": ""}
    UBUNTU: ClassVar[dict[str, str]] = {"cloud.google.com/gke-os-distribution": "ubuntu"}

    def _config(self, selector: dict[str, str] | None) -> dict[str, Any]:
        pool: dict[str, Any] = {"name": "p", "tee": "tdx"}
        if selector is not None:
            pool["nodeSelector"] = selector
        return {"coco:cluster": {**GKE, "attach": True, "name": "prod"},
                "coco:nodePools": [pool], "coco:image": {"recipe": "minimal"}}

    @pytest.mark.parametrize("os", [None, "cos"], ids=["unset", "cos"])
    def test_worker_label_without_ubuntu_is_refused(self, os):
        selector = dict(self.WORKER)
        if os is not None:
            selector["cloud.google.com/gke-os-distribution"] = os
        issue = _errors(self._config(selector))["coco:nodePools[0].nodeSelector"]
        assert "need those workers on Ubuntu" in issue.message
        assert "Container-Optimized OS, has a read-only root" in issue.message
        assert "node.kubernetes.io/worker" not in issue.message  # that part is confirmed
        assert "UBUNTU_CONTAINERD" in issue.hint
        assert ("gcloud container node-pools create POOL --cluster=CLUSTER "
                "--location=LOCATION --image-type=UBUNTU_CONTAINERD") in issue.hint
        assert "cloud.google.com/gke-os-distribution: ubuntu" in issue.hint

    def test_both_missing_are_one_refusal_naming_both(self):
        issue = _errors(self._config(None))["coco:nodePools[0].nodeSelector"]
        assert 'labelled node.kubernetes.io/worker=""' in issue.message
        assert "need those workers on Ubuntu" in issue.message
        assert "gcloud container node-pools update" in issue.hint
        assert "--image-type=UBUNTU_CONTAINERD" in issue.hint

    def test_ubuntu_workers_confirmed_pass_and_narrow_the_runtime_class(self):
        from spec import runtime_plan

        config = self._config({**self.WORKER, **self.UBUNTU})
        assert "coco:nodePools[0].nodeSelector" not in _errors(config)
        spec, _ = validate(config, stack="t")
        (plan,) = runtime_plan.runtime_classes(spec)
        assert plan.node_selector["cloud.google.com/gke-os-distribution"] == "ubuntu"

    @pytest.mark.parametrize("cluster", [
        {"provider": "existing"},  # any cluster: its nodes need not be GKE's
        {"provider": "aks", "location": "westeurope", "attach": True, "name": "c",
         "resourceGroup": "rg"},
    ], ids=["existing", "attached-aks"])
    def test_only_attached_gke_needs_the_os_label(self, cluster):
        pool = {**IBM} if cluster["provider"] == "existing" else {"name": "p", "tee": "snp"}
        config = {"coco:cluster": cluster,
                  "coco:nodePools": [{**pool, "nodeSelector": self.WORKER}],
                  "coco:image": {"recipe": "minimal"}}
        secure = frozenset({"coco:nodePools[0].ibmcloud.apiKey"})
        spec, _ = validate(config, stack="t", secure_paths=secure)  # raises on any error
        assert spec.node_pools[0].node_selector == self.WORKER

    def test_a_gke_cluster_the_stack_creates_needs_no_selector(self):
        errors = _errors(_gcp({"name": "p", "tee": "tdx"}))
        assert not errors, errors


class TestNfdValue:
    """coco:runtime.nodeFeatureDiscovery is true, false or "external"; anything else is refused
    at its key path with the three choices."""

    @pytest.mark.parametrize("value", ["External", "yes", "true", 1, {"a": "b"}])
    def test_refused_at_the_key(self, value):
        errors = _errors({
            "coco:cluster": {"provider": "existing"},
            "coco:nodePools": [{"name": "snp", "tee": "snp", "mode": "bare-metal",
                                "nodeSelector": {"a": "b"}}],
            "coco:runtime": {"nodeFeatureDiscovery": value},
        })
        issue = errors["coco:runtime.nodeFeatureDiscovery"]
        assert 'true, false or "external"' in issue.message
        assert '"external"' in issue.hint

    @pytest.mark.parametrize("value", [True, False, "external"])
    def test_accepted(self, value):
        spec, _ = validate({
            "coco:cluster": {"provider": "existing"},
            "coco:nodePools": [{"name": "snp", "tee": "snp", "mode": "bare-metal",
                                "nodeSelector": {"a": "b"}}],
            "coco:runtime": {"nodeFeatureDiscovery": value},
        }, stack="t")
        assert spec.runtime.node_feature_discovery == value
        assert spec.runtime.installs_nfd is (value is True)
        assert spec.runtime.nfd_present is (value is not False)

    def test_external_with_peer_pods_not_refused(self):
        issues = _issues({
            "coco:cluster": {"provider": "aks", "location": "westeurope"},
            "coco:nodePools": [{"name": "p", "tee": "snp"}],
            "coco:runtime": {"nodeFeatureDiscovery": "external"},
            "coco:image": {"recipe": "minimal"},
        })
        assert [i for i in issues if i.severity == "error"] == []
