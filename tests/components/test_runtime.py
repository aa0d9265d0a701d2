"""The CoCo runtime: exactly the shims the pools use, RuntimeClasses pinned to their TEE nodes."""

from __future__ import annotations

import itertools

import pytest

from cli import render
from spec import catalogue, labels, runtime_plan, versions
from spec.errors import SpecError
from spec.validate import validate
from tests.conftest import assert_valid_kubernetes, one, render_program, resources_of

RELEASE = "kubernetes:helm.sh/v3:Release"
RUNTIME_CLASS = "kubernetes:node.k8s.io/v1:RuntimeClass"
SHIM = {"snp": "qemu-snp", "tdx": "qemu-tdx", "se": "qemu-se", "none": "qemu-coco-dev"}
ARCH = {"snp": "amd64", "tdx": "amd64", "se": "s390x", "none": "amd64"}


def _pool(name, tee, **extra):
    return {
        "name": name,
        "tee": tee,
        "mode": "bare-metal",
        "nodeSelector": {"coco-stack.io/tee": tee},
        **extra,
    }


def _config(*pools, cluster=None, runtime=None):
    config = {"coco:cluster": cluster or {"provider": "existing"}, "coco:nodePools": list(pools)}
    if runtime is not None:
        config["coco:runtime"] = runtime
    return config


def _values(result):
    return render.unwrap(one(result, RELEASE).inputs["values"])["kata-as-coco-runtime"]


def _enabled(shims):
    """The shims the values turn on; asserts every other shim of kata-deploy 4.0.0 is turned off
    by name (`enabled: false`), not left to `disableAll`."""
    on = sorted(k for k, v in shims.items() if k != "disableAll" and v["enabled"] is True)
    off = sorted(k for k, v in shims.items() if k != "disableAll" and v == {"enabled": False})
    assert sorted(on + off) == sorted(runtime_plan.KATA_DEPLOY_SHIMS)
    return on


def _disjoint(a, b):
    return any(k in b and b[k] != v for k, v in a.items())


class TestShimsPerTee:
    """For every bare-metal TEE the chart enables exactly its shim, on its architecture."""

    @pytest.mark.parametrize("tee", sorted(SHIM))
    def test_exactly_the_needed_shim(self, render_config, tee):
        result = render_config(_config(_pool("p", tee)))
        values = _values(result)
        shims = values["shims"]
        assert shims["disableAll"] is True
        assert _enabled(shims) == [SHIM[tee]]
        assert shims[SHIM[tee]]["enabled"] is True
        assert shims[SHIM[tee]]["supportedArches"] == [ARCH[tee]]
        assert values["defaultShim"] == {ARCH[tee]: SHIM[tee]}
        assert values["runtimeClasses"]["enabled"] is False  # ours, not the chart's
        (rc,) = resources_of(result, RUNTIME_CLASS)
        assert rc.inputs["handler"] == f"kata-{SHIM[tee]}"
        assert rc.inputs["metadata"]["name"] == result.outputs["runtimeClasses"]["p"]
        assert assert_valid_kubernetes(result) >= 3

    def test_chart_pinned_from_versions(self, render_stack):
        release = one(render_stack("dev"), RELEASE)
        assert release.inputs["chart"] == versions.COCO_CHART.reference
        assert release.inputs["version"] == versions.COCO_CHART.version

    def test_pull_settings_per_shim(self, render_stack):
        shim = _values(render_stack("dev"))["shims"]["qemu-coco-dev"]
        assert shim["containerd"] == {"snapshotter": "nydus", "forceGuestPull": False}
        assert shim["crio"] == {"guestPull": True}

    def test_s390x_sample(self, render_stack):
        result = render_stack("baremetal-se")
        values = _values(result)
        assert values["defaultShim"] == {"s390x": "qemu-se"}
        rc = one(result, RUNTIME_CLASS)
        assert rc.inputs["metadata"]["name"] == "kata-qemu-se"
        assert rc.inputs["overhead"]["podFixed"] == {"memory": "1024Mi", "cpu": "1.0"}

    def test_k3s_distribution(self, render_config):
        result = render_config(
            _config(_pool("p", "snp"), cluster={"provider": "existing", "distribution": "k3s"})
        )
        assert _values(result)["k8sDistribution"] == "k3s"
        assert _values(render_config(_config(_pool("p", "snp"))))["k8sDistribution"] == "k8s"

    def test_no_runtime_for_nodes_pools(self):
        spec, _ = validate(
            {
                "coco:cluster": {"provider": "aks", "location": "westeurope"},
                "coco:nodePools": [{"name": "cvm", "tee": "snp", "mode": "nodes"}],
            },
            stack="t",
        )
        assert runtime_plan.runtime_classes(spec) == []
        assert _enabled(runtime_plan.chart_values(spec)["kata-as-coco-runtime"]["shims"]) == []


class TestMixedCluster:
    """SNP, TDX and coco-dev pools in one stack: three RuntimeClasses, disjoint selectors,
    each matching the labels of its own pool's nodes."""

    def test_three_disjoint_runtime_classes(self, render_stack):
        result = render_stack("mixed")
        classes = {rc.inputs["metadata"]["name"]: rc for rc in resources_of(result, RUNTIME_CLASS)}
        assert sorted(classes) == ["kata-qemu-coco-dev", "kata-qemu-snp", "kata-qemu-tdx"]
        selectors = {n: rc.inputs["scheduling"]["nodeSelector"] for n, rc in classes.items()}
        for a, b in itertools.combinations(selectors, 2):
            assert _disjoint(selectors[a], selectors[b]), (a, b)
        for pool, summary in result.outputs["pools"].items():
            selector = selectors[result.outputs["runtimeClasses"][pool]]
            wanted = {k: v for k, v in selector.items() if k != runtime_plan.KATA_RUNTIME_READY}
            assert wanted.items() <= summary["nodeSelector"].items(), pool
        assert assert_valid_kubernetes(result) >= 5  # namespaces, 3 RuntimeClasses, KBS

    def test_kata_deploy_only_on_pool_nodes(self, render_stack):
        terms = _values(render_stack("mixed"))["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        assert sorted(t["matchExpressions"][0]["values"][0] for t in terms) == [
            "none",
            "snp",
            "tdx",
        ]


class TestNotBeforeReady:
    """No CoCo pod lands on a node before kata-deploy has installed the runtime there."""

    def test_runtime_classes_require_the_ready_label(self, render_stack):
        for rc in resources_of(render_stack("mixed"), RUNTIME_CLASS):
            assert (
                rc.inputs["scheduling"]["nodeSelector"][runtime_plan.KATA_RUNTIME_READY] == "true"
            )

    def test_startup_taint_removed_by_kata_deploy(self, render_stack):
        values = _values(render_stack("mixed"))
        assert values["startupTaints"] == [runtime_plan.STARTUP_TAINT]
        assert {
            "key": runtime_plan.STARTUP_TAINT_KEY,
            "operator": "Exists",
            "effect": "NoSchedule",
        } in values["tolerations"]

    def test_ordering(self, render_stack):
        result = render_stack("mixed")
        release = one(result, RELEASE)
        namespace = one(result, "kubernetes:core/v1:Namespace", "coco-runtime-namespace")
        assert namespace.urn in release.dependencies
        for rc in resources_of(result, RUNTIME_CLASS):
            assert release.urn in rc.dependencies


class TestSharedShim:
    """Pools sharing a shim get one RuntimeClass selecting what their nodes have in common."""

    def test_common_label_selected(self, render_config):
        result = render_config(
            _config(
                _pool("snp-a", "snp", nodeSelector={"coco-stack.io/tee": "snp", "rack": "a"}),
                _pool("snp-b", "snp", nodeSelector={"coco-stack.io/tee": "snp", "rack": "b"}),
            )
        )
        rc = one(result, RUNTIME_CLASS)
        assert rc.inputs["scheduling"]["nodeSelector"] == {
            "coco-stack.io/tee": "snp",
            runtime_plan.KATA_RUNTIME_READY: "true",
        }
        assert rc.inputs["metadata"]["annotations"]["coco-stack.io/pools"] == "snp-a,snp-b"
        assert result.outputs["runtimeClasses"] == {
            "snp-a": "kata-qemu-snp",
            "snp-b": "kata-qemu-snp",
        }

    def test_nothing_in_common_refused(self):
        with pytest.raises(SpecError) as info:
            validate(
                _config(
                    _pool("a", "snp", nodeSelector={"rack": "a"}),
                    _pool("b", "snp", nodeSelector={"rack": "b"}),
                ),
                stack="t",
            )
        (issue,) = info.value.issues
        assert issue.path == "coco:nodePools[1].nodeSelector"
        assert "coco-stack.io/tee=snp" in issue.hint

    def test_nfd_labels_for_stack_managed_hosts(self):
        host = {"address": "10.0.0.1", "sshKey": "k"}
        spec, _ = validate(
            _config(
                {"name": "snp", "tee": "snp", "mode": "bare-metal", "hosts": [host]},
                runtime={"nodeFeatureDiscovery": True},
            ),
            stack="t",
            secure_paths=frozenset({"coco:nodePools[0].hosts[0].sshKey"}),
        )
        (plan,) = runtime_plan.runtime_classes(spec)
        assert plan.node_selector == {
            "amd.feature.node.kubernetes.io/snp": "true",
            runtime_plan.KATA_RUNTIME_READY: "true",
        }
        values = runtime_plan.chart_values(spec)["kata-as-coco-runtime"]
        assert values["node-feature-discovery"] == {"enabled": True}


class TestPeerPodsRuntime:
    """Peer-pods pools add the remote shim to the one kata-deploy, on the CAA worker nodes."""

    def test_remote_shim_and_runtime_class(self):
        spec, _ = validate({
            "coco:cluster": {"provider": "aks", "location": "westeurope"},
            "coco:nodePools": [{"name": "snp", "tee": "snp"}, {"name": "tdx", "tee": "tdx"}],
            "coco:image": {"recipe": "minimal"},
        }, stack="t")
        (plan,) = runtime_plan.runtime_classes(spec)
        assert (plan.name, plan.handler, plan.pools) == ("kata-remote", "kata-remote",
                                                          ("snp", "tdx"))
        assert plan.node_selector == {"node.kubernetes.io/worker": "",
                                      runtime_plan.KATA_RUNTIME_READY: "true"}
        shims = runtime_plan.chart_values(spec)["kata-as-coco-runtime"]["shims"]
        assert _enabled(shims) == ["remote"]

    def test_one_cloud_per_cluster(self):
        with pytest.raises(SpecError) as info:
            validate({"coco:nodePools": [
                {"name": "a", "tee": "snp", "provider": "azure", "region": "westeurope",
                 "nodeSelector": {"node.kubernetes.io/worker": ""}},
                {"name": "b", "tee": "snp", "provider": "aws", "region": "eu-west-1",
                 "nodeSelector": {"node.kubernetes.io/worker": ""}},
            ], "coco:image": {"recipe": "minimal"}}, stack="t")
        assert [i.path for i in info.value.issues] == ["coco:nodePools[1].provider"]


def _spec_for(offering):
    """A valid spec with one pool of this catalogue offering."""
    pool = {"name": "p", "tee": offering.tee, "mode": offering.mode, "provider": offering.provider}
    cluster = {"provider": "existing"}
    if offering.mode == "bare-metal":
        pool["nodeSelector"] = {"coco-stack.io/tee": offering.tee}
    elif offering.mode == "nodes":
        pool["nodeSelector"] = {"coco-stack.io/pool": "p"}
    elif offering.mode == "peer-pods":
        pool["nodeSelector"] = {"node.kubernetes.io/worker": ""}  # labelled for CAA
    if offering.provider != "baremetal":
        pool["region"] = {"azure": "westeurope", "aws": "eu-west-1", "gcp": "europe-west4",
                          "ibmcloud": "eu-de"}[offering.provider]
        if offering.provider == "gcp":
            pool["zone"] = "europe-west4-a"
        if offering.provider == "ibmcloud":
            pool["zone"] = "eu-de-1"
            pool["ibmcloud"] = {"vpcId": "v", "subnetId": "s", "imageId": "i",
                                "resourceGroupId": "g", "apiKey": "k"}
    image = {"recipe": "minimal"} if offering.mode == "peer-pods" else {}
    spec, _ = validate(
        {"coco:cluster": cluster, "coco:nodePools": [pool], "coco:image": image}, stack="t",
        secure_paths=frozenset({"coco:nodePools[0].ibmcloud.apiKey"}),
    )
    return spec


class TestEveryOffering:
    """For every TEE and mode in the catalogue, the runtime enables exactly the shim it needs
    (none for nodes pools), and what it authors is valid Kubernetes."""

    @pytest.mark.parametrize("offering", catalogue.OFFERINGS, ids=lambda o: "/".join(o.key))
    def test_shims_and_objects(self, offering):
        from components.runtime import CocoRuntime

        spec = _spec_for(offering)
        shims = runtime_plan.chart_values(spec)["kata-as-coco-runtime"]["shims"]
        expected = [] if offering.shim is None else [offering.shim]
        assert _enabled(shims) == expected
        if offering.shim is None:
            assert runtime_plan.runtime_classes(spec) == []
            return
        result = render_program(lambda: CocoRuntime("rt", spec))
        (rc,) = resources_of(result, RUNTIME_CLASS)
        assert rc.inputs["metadata"]["name"] == offering.runtime_class
        assert rc.inputs["handler"] == f"kata-{offering.shim}"
        assert assert_valid_kubernetes(result) == 2  # namespace and RuntimeClass

    def test_pool_labels_are_valid_node_labels(self):
        import kubernetes_validate

        for tee in ("snp", "tdx", "se", "none"):
            node = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": "n", "labels": labels.pool_labels(f"pool-{tee}", tee)}}
            kubernetes_validate.validate(node, "1.34.0", strict=True)
            assert labels.pool_labels(f"pool-{tee}", tee)[labels.TEE] == tee


class TestRemoteArches:
    """The remote shim runs on worker nodes of any architecture kata-deploy supports for it,
    not the pod VM's (IBM SE pod VMs are s390x, their workers usually x86)."""

    def test_ibm_se_remote_on_x86_workers(self):
        spec = _spec_for(catalogue.find("ibmcloud", "se", "peer-pods"))
        values = runtime_plan.chart_values(spec)["kata-as-coco-runtime"]
        assert values["shims"]["remote"]["supportedArches"] == ["amd64", "ppc64le", "s390x"]
        assert values["defaultShim"] == {"amd64": "remote", "ppc64le": "remote",
                                         "s390x": "remote"}


class TestEveryOtherShimOffByName:
    """kata-deploy 4.0.0 lets a shim's explicit `enabled: true` win over `shims.disableAll`
    (templates/_helpers.tpl `kata-deploy.isShimEnabled`), and the CoCo umbrella chart's own
    defaults for its kata-deploy are not verified: every shim we do not use is off by name."""

    def test_the_shim_list_is_the_pinned_charts(self):
        import json
        from pathlib import Path

        schema = json.loads(
            (Path(__file__).parents[1] / "charts/confidential-containers/values.schema.json")
            .read_text()
        )
        shims = schema["definitions"]["kataDeploy"]["properties"]["shims"]["properties"]
        assert sorted(shims.keys() - {"disableAll"}) == sorted(runtime_plan.KATA_DEPLOY_SHIMS)
        assert len(runtime_plan.KATA_DEPLOY_SHIMS) == 25

    @pytest.mark.parametrize("stack", ["dev", "mixed", "azure-snp", "baremetal-se"])
    def test_sample_stacks_name_every_shim(self, render_stack, stack):
        release = one(render_stack(stack), RELEASE, "coco-runtime-chart")
        shims = render.unwrap(release.inputs["values"])["kata-as-coco-runtime"]["shims"]
        on = _enabled(shims)  # asserts the rest are `enabled: false`
        assert on and all(shims[s]["enabled"] is True for s in on)
        # a user default that turned a shim on would be overridden: nothing is left unset
        assert all(isinstance(v["enabled"], bool) for k, v in shims.items() if k != "disableAll")


class TestNfdOverhead:
    """With NFD, kata-deploy 4.0.0 adds `tdx.intel.com/keys` / `sev-snp.amd.com/esids: "1"` to
    the overhead of kata*tdx* / kata*snp* RuntimeClasses (binary/src/k8s/runtimeclasses.rs): ours
    declare it, so `pulumi refresh` finds no drift; without NFD they must not (no node
    advertises the resource, so no pod could be scheduled)."""

    @pytest.mark.parametrize(
        "tee,key",
        [("snp", "sev-snp.amd.com/esids"), ("tdx", "tdx.intel.com/keys"), ("se", None),
         ("none", None)],
    )
    def test_rendered_overhead(self, render_config, tee, key):
        base = dict(runtime_plan.OVERHEAD[SHIM[tee]])
        with_nfd = render_config(_config(_pool("p", tee), runtime={"nodeFeatureDiscovery": True}))
        rc = one(with_nfd, RUNTIME_CLASS)
        expected = {**base, key: "1"} if key else base
        assert rc.inputs["overhead"]["podFixed"] == expected
        assert assert_valid_kubernetes(with_nfd) >= 3
        without = one(render_config(_config(_pool("p", tee))), RUNTIME_CLASS)
        assert without.inputs["overhead"]["podFixed"] == base

    def test_remote_class_untouched(self):
        # kata-remote has neither "snp" nor "tdx" in its name: kata-deploy leaves it alone
        assert runtime_plan.overhead("remote", "kata-remote", True) == runtime_plan.OVERHEAD[
            "remote"
        ]
        assert runtime_plan.nfd_overhead_key("kata-qemu-nvidia-gpu-tdx") == "tdx.intel.com/keys"
        assert runtime_plan.nfd_overhead_key("other-snp") is None


class TestExternalNfd:
    """`nodeFeatureDiscovery: external`: NFD already runs in the cluster (GPU operator, OpenShift
    NFD operator). kata-deploy 4.0.0 patches the overhead whenever the NodeFeatureRule CRD exists
    (binary/src/k8s/nfd.rs setup_nfd_rules), whatever our flag says; the stack declares it
    without installing NFD, and keeps selecting nodes by its own labels."""

    @pytest.mark.parametrize(
        "tee,key", [("snp", "sev-snp.amd.com/esids"), ("tdx", "tdx.intel.com/keys")]
    )
    def test_overhead_declared_nfd_not_installed(self, render_config, tee, key):
        external = {"nodeFeatureDiscovery": "external"}
        result = render_config(_config(_pool("p", tee), runtime=external))
        rc = one(result, RUNTIME_CLASS)
        base = runtime_plan.OVERHEAD[SHIM[tee]]
        assert rc.inputs["overhead"]["podFixed"] == {**base, key: "1"}
        assert _values(result)["node-feature-discovery"] == {"enabled": False}
        assert assert_valid_kubernetes(result) >= 3

    def test_stack_labels_still_select_managed_hosts(self):
        host = {"address": "10.0.0.1", "sshKey": "k"}
        spec, _ = validate(
            _config(
                {"name": "snp", "tee": "snp", "mode": "bare-metal", "hosts": [host]},
                runtime={"nodeFeatureDiscovery": "external"},
            ),
            stack="t",
            secure_paths=frozenset({"coco:nodePools[0].hosts[0].sshKey"}),
        )
        (plan,) = runtime_plan.runtime_classes(spec)
        assert "amd.feature.node.kubernetes.io/snp" not in plan.node_selector
        assert plan.node_selector[labels.TEE] == "snp"
        assert plan.overhead["sev-snp.amd.com/esids"] == "1"

    def test_with_peer_pods_accepted_remote_class_untouched(self):
        # the VMX/SVM nodeAffinity that makes NFD refused next to peer pods is keyed on the
        # chart's node-feature-discovery.enabled (templates/_helpers.tpl@4.0.0), which stays off
        spec, _ = validate({
            "coco:cluster": {"provider": "aks", "location": "westeurope"},
            "coco:nodePools": [{"name": "snp", "tee": "snp"}],
            "coco:runtime": {"nodeFeatureDiscovery": "external"},
            "coco:image": {"recipe": "minimal"},
        }, stack="t")
        (plan,) = runtime_plan.runtime_classes(spec)
        assert plan.overhead == runtime_plan.OVERHEAD["remote"]
        values = runtime_plan.chart_values(spec)["kata-as-coco-runtime"]
        assert values["node-feature-discovery"] == {"enabled": False}


class TestValuesNotLeftToDefaults:
    """Values the stack relies on are set by name: the umbrella's kata-deploy switch, the 4.0.0
    image whose behaviour runtime_plan mirrors, the DaemonSet mode its affinity and tolerations
    are for, no install suffix (handlers kata-<shim>), no custom runtimes, no verification Job."""

    def test_set_explicitly(self, render_config):
        values = _values(render_config(_config(_pool("p", "snp"))))
        assert values["enabled"] is True
        assert values["image"] == {"reference": "quay.io/kata-containers/kata-deploy",
                                   "tag": versions.KATA_VERSION}
        assert values["deploymentMode"] == "daemonset"
        assert values["env"] == {"multiInstallSuffix": ""}
        assert values["customRuntimes"] == {"enabled": False}
        assert values["verification"] == {"pod": ""}
        # no immutable kubectl tag is named upstream at 4.0.0: left to the chart, not invented
        assert "kubectlImage" not in values

    def test_handler_has_no_suffix(self):
        spec, _ = validate(_config(_pool("p", "tdx")), stack="t")
        (plan,) = runtime_plan.runtime_classes(spec)
        values = runtime_plan.chart_values(spec)["kata-as-coco-runtime"]
        assert plan.handler == f"kata-{plan.shim}" and not values["env"]["multiInstallSuffix"]
