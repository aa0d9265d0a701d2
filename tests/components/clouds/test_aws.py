"""AWS under mocks with the stack's real program: EKS cluster, SEV-SNP node groups, peer-pod
infrastructure and the pod-VM AMI, checked on what the program registers; bad AWS stacks
refused with the key path before anything is registered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli import render
from components import peerpods
from components.aws import iam
from components.aws.peerpods import SERVICE_ACCOUNTS
from components.kbs import config as kbs_config
from spec import versions
from spec.errors import SpecError
from tests.components.clouds.conftest_aws import (
    ATTACHED,
    BUCKET,
    CA_DATA,
    ENDPOINT,
    ISSUER,
    OIDC_ARN,
    install_aws_mocks,
)
from tests.conftest import ROOT, assert_valid_kubernetes, one, resources_of
from tests.spec.reference_values import complete
from tests.test_policies import validate as policy_violations

LT = "aws:ec2/launchTemplate:LaunchTemplate"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
PODVM_LT = "coco-peer-pods-infra-template"
RELEASE = "kubernetes:helm.sh/v3:Release"
# peer pods on an attached cluster confirm their workers are labelled for CAA
# (spec.rules.clouds.attached_peer_pod_workers)
WORKERS = {"node.kubernetes.io/worker": ""}
PEER = {
    "coco:environment": "staging",
    "coco:cluster": {"provider": "eks", "name": "c1", "region": "eu-west-1"},
    "coco:nodePools": [{"name": "snp", "tee": "snp", "mode": "peer-pods"}],
    "coco:image": {"recipe": "podvm"},
    "coco:kbs": {"referenceValues": complete("snp")},  # spec.coverage
}
NODES = {
    **PEER,
    "coco:nodePools": [{"name": "snp", "tee": "snp", "mode": "nodes", "count": 3}],
    "coco:image": {},
}


@pytest.fixture
def aws_mocks(monkeypatch):
    """AWS provider outputs and data-source results for every render in the test."""
    return install_aws_mocks(monkeypatch)


@pytest.fixture
def cluster_sg(monkeypatch):
    """The created EKS cluster reports the security group EKS made for it (the shared mock
    echoes vpcConfig without it)."""
    from tests.components.clouds import conftest_aws

    created = "sg-0created"
    plain = conftest_aws.aws_outputs

    def with_cluster_sg(typ: str, given: dict[str, Any]) -> dict[str, Any] | None:
        state = plain(typ, given)
        if typ == "aws:eks/cluster:Cluster" and state is not None:
            state["vpcConfig"] = {**state["vpcConfig"], "clusterSecurityGroupId": created}
        return state

    monkeypatch.setattr(conftest_aws, "aws_outputs", with_cluster_sg)
    return created


@pytest.fixture
def engine_log():
    """Messages the program logs through pulumi.log (under mocks they reach the render's
    engine logger)."""
    import logging

    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("coco.render.engine")
    handler = Keep(logging.WARNING)
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def inputs(result: render.Render, type_: str, name: str | None = None) -> dict[str, Any]:
    return render.unwrap(one(result, type_, name).inputs)  # type: ignore[no-any-return]


def kubelet_flags(template: dict[str, Any]) -> list[str]:
    """The kubelet flags of an AL2023 nodeadm NodeConfig in launch-template user data."""
    import base64
    import email

    import yaml

    message = email.message_from_bytes(base64.b64decode(template["userData"]))
    (part,) = [p for p in message.walk() if p.get_content_type() == "application/node.eks.aws"]
    config = yaml.safe_load(part.get_payload())
    assert config["kind"] == "NodeConfig"
    return config["spec"]["kubelet"]["flags"]  # type: ignore[no-any-return]


def statement(policy: str, sid: str) -> dict[str, Any]:
    (found,) = [s for s in json.loads(policy)["Statement"] if s.get("Sid") == sid]
    return found  # type: ignore[no-any-return]


class TestSampleStacks:
    """The two AWS sample stacks render, validate, and pass the policy pack's cloud checks."""

    @pytest.mark.parametrize("stack", ["aws-snp", "aws-snp-nodes"])
    def test_render_clean(self, render_stack, stack):
        result = render_stack(stack)
        assert assert_valid_kubernetes(result) >= 1
        assert one(result, "aws:eks/cluster:Cluster").inputs["version"] == "1.34"
        regs = resources_of(result, LT) + resources_of(result, "aws:ec2/ami:Ami")
        assert regs, "no launch template or AMI to check"
        for reg in regs:
            props = render.unwrap(reg.inputs)
            for policy in ("confidential-pools", "peer-pod-image-tee-features"):
                assert policy_violations(policy, reg.type, props, reg.name) == [], reg.name

    def test_policy_would_catch_snp_off(self, render_stack):
        (reg,) = [r for r in resources_of(render_stack("aws-snp-nodes"), LT)
                  if r.name != "coco-cluster-system"]
        props = render.unwrap(reg.inputs)
        props["cpuOptions"] = {"amdSevSnp": "disabled"}
        assert policy_violations("confidential-pools", LT, props, reg.name)

    def test_deterministic(self):
        # two fresh renders (the render_stack fixture shares one render between tests)
        a = render.dumps_json(render.run_stack("aws-snp", ROOT).document())
        b = render.dumps_json(render.run_stack("aws-snp", ROOT).document())
        assert a == b


class TestCluster:
    """EKS: pinned version, a VPC across two zones, IRSA's OIDC provider, a secret kubeconfig."""

    def test_vpc_two_zones_public_and_private(self, render_config, aws_mocks):
        result = render_config(PEER)
        subnets = {
            r.name: render.unwrap(r.inputs) for r in resources_of(result, "aws:ec2/subnet:Subnet")
        }
        public = {s["availabilityZone"] for n, s in subnets.items() if "-public-" in n}
        private = {s["availabilityZone"] for n, s in subnets.items() if "-private-" in n}
        assert public == private == {"eu-west-1a", "eu-west-1b"}
        eks = inputs(result, "aws:eks/cluster:Cluster")
        assert eks["name"] == "c1" and eks["version"] == versions.KUBERNETES_VERSION
        assert len(eks["vpcConfig"]["subnetIds"]) == 4
        nat = inputs(result, "aws:ec2/natGateway:NatGateway")
        assert nat["subnetId"].endswith("-public-eu-west-1a-id")

    def test_oidc_provider_for_irsa(self, render_config, aws_mocks):
        result = render_config(PEER)
        oidc = inputs(result, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
        assert oidc["url"] == ISSUER and oidc["clientIdLists"] == ["sts.amazonaws.com"]

    def test_kubeconfig_secret_with_get_token(self, render_config, aws_mocks, tmp_path):
        result = render_config(PEER)
        provider = one(result, "pulumi:providers:kubernetes")
        assert render.secret_paths(provider.inputs) == ["kubeconfig"]
        import yaml

        config = yaml.safe_load(render.unwrap(provider.inputs)["kubeconfig"])
        assert config["clusters"][0]["cluster"] == {
            "server": ENDPOINT,
            "certificate-authority-data": CA_DATA,
        }
        assert config["users"][0]["user"]["exec"]["args"][:4] == [
            "eks",
            "get-token",
            "--cluster-name",
            "c1",
        ]
        out = tmp_path / "out"
        render.write(result, out)
        blob = b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())
        assert CA_DATA.encode() not in blob and b"get-token" not in blob

    def test_system_pool_carries_worker_label_for_peer_pods(self, render_config, aws_mocks):
        """CAA's daemonset selects node.kubernetes.io/worker=; EKS refuses empty label values,
        so the kubelet sets it from the system pool's launch template."""
        result = render_config(PEER)
        system = inputs(result, "aws:eks/nodeGroup:NodeGroup", "coco-cluster-system")
        assert system["amiType"] == "AL2023_x86_64_STANDARD"
        assert system.get("labels") in (None, {})
        template = one(result, LT, "coco-cluster-system")
        assert system["launchTemplate"] == {"id": f"{template.name}-id", "version": "3"}
        assert kubelet_flags(render.unwrap(template.inputs)) == [
            "--node-labels=node.kubernetes.io/worker="
        ]
        # without peer pods too: EKS cannot add a launch template to an existing node group,
        # so a peer-pods pool added later would force a replacement of "system" (which fails
        # on its fixed name)
        nodes = render_config(NODES)
        template = one(nodes, LT, "coco-cluster-system")
        assert inputs(nodes, "aws:eks/nodeGroup:NodeGroup", "coco-cluster-system")[
            "launchTemplate"
        ] == {"id": f"{template.name}-id", "version": "3"}
        assert kubelet_flags(render.unwrap(template.inputs)) == [
            "--node-labels=node.kubernetes.io/worker="
        ]

    def test_default_storage_class_for_the_kbs(self, render_config, aws_mocks):
        result = render_config(PEER)
        sc = inputs(result, "kubernetes:storage.k8s.io/v1:StorageClass")
        assert sc["provisioner"] == "ebs.csi.aws.com"
        assert (
            sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
        )
        role = inputs(result, "aws:iam/role:Role", "coco-cluster-ebs-csi")
        cond = json.loads(role["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
        assert cond[f"{ISSUER[8:]}:sub"] == [
            "system:serviceaccount:kube-system:ebs-csi-controller-sa"
        ]
        assert inputs(result, "aws:eks/addon:Addon")["serviceAccountRoleArn"] == role_arn(
            result, "coco-cluster-ebs-csi"
        )

    def test_attach_reads_the_existing_cluster(self, render_config, aws_mocks):
        config = {
            **PEER,
            "coco:cluster": {
                "provider": "eks",
                "name": "prod",
                "region": "eu-west-1",
                "attach": True,
            },
            "coco:nodePools": [{**PEER["coco:nodePools"][0], "nodeSelector": WORKERS}],
        }
        result = render_config(config)
        assert resources_of(result, "aws:eks/cluster:Cluster") == []
        assert resources_of(result, "aws:ec2/vpc:Vpc") == []
        assert "aws:eks/getCluster:getCluster" in aws_mocks[-1].calls
        sg = inputs(result, "aws:ec2/securityGroup:SecurityGroup")
        assert sg["vpcId"] == ATTACHED["vpcConfig"]["vpcId"]
        rule = inputs(result, INGRESS, "coco-peer-pods-infra-sg-tcp-15150")
        assert rule["cidrIpv4"] == "172.31.0.0/16"
        # the pod VMs' VXLAN into the attached cluster's own security group
        vxlan = inputs(result, INGRESS, "coco-peer-pods-infra-nodes-udp-4789")
        assert vxlan["securityGroupId"] == ATTACHED["vpcConfig"]["clusterSecurityGroupId"]
        assert vxlan["referencedSecurityGroupId"] == "coco-peer-pods-infra-sg-id"
        template = inputs(result, LT, PODVM_LT)
        assert template["networkInterfaces"][0]["subnetId"] == "subnet-0a"  # sorted, first
        trust = inputs(result, "aws:iam/role:Role", "coco-peer-pods-infra-caa")
        assert json.loads(trust["assumeRolePolicy"])["Statement"][0]["Principal"] == {
            "Federated": OIDC_ARN
        }

    def test_attach_warns_about_the_subnet_choice(self, render_config, aws_mocks, engine_log):
        """An attached cluster's pod VMs go into its first subnet by id, without a public IP:
        the stack says so, and names what that subnet needs; a created cluster has its own
        NAT-routed pod-VM subnet and no such warning."""
        attached = {
            **PEER,
            "coco:cluster": {"provider": "eks", "name": "p", "region": "eu-west-1", "attach": True},
            "coco:nodePools": [{**PEER["coco:nodePools"][0], "nodeSelector": WORKERS}],
        }
        render_config(PEER)
        assert not [m for m in engine_log if "coco:cluster.attach" in m]
        render_config(attached)
        (warning,) = [m for m in engine_log if "coco:cluster.attach" in m]
        assert "first of the cluster's subnets sorted by id" in warning
        assert "NAT gateway" in warning

    def test_attach_with_a_named_pod_vm_subnet(self, render_config, aws_mocks, engine_log):
        """podVmSubnet replaces the first-subnet guess, and the warning about it."""
        attached = {
            **PEER,
            "coco:cluster": {"provider": "eks", "name": "p", "region": "eu-west-1", "attach": True},
            "coco:nodePools": [{**PEER["coco:nodePools"][0], "nodeSelector": WORKERS,
                                "podVmSubnet": "subnet-0123456789abcdef0"}],
        }
        result = render_config(attached)
        template = inputs(result, LT, PODVM_LT)
        assert template["networkInterfaces"][0]["subnetId"] == "subnet-0123456789abcdef0"
        assert not [m for m in engine_log if "coco:cluster.attach" in m]

    def test_attach_survives_empty_data_sources(self, render_config, aws_mocks, monkeypatch):
        """Under plain mocks (and in a preview) data sources may return nothing."""
        from tests.components.clouds import conftest_aws

        monkeypatch.setattr(conftest_aws, "aws_calls", lambda token, args: {})
        config = {
            **PEER,
            "coco:cluster": {"provider": "eks", "name": "p", "region": "eu-west-1", "attach": True},
            "coco:nodePools": [{**PEER["coco:nodePools"][0], "nodeSelector": WORKERS}],
        }
        result = render_config(config)
        assert inputs(result, LT, PODVM_LT)["cpuOptions"] == {"amdSevSnp": "enabled"}


def role_arn(result: render.Render, name: str) -> str:
    import hashlib

    digest = hashlib.sha256(inputs(result, "aws:iam/role:Role", name)["assumeRolePolicy"].encode())
    return f"arn:aws:iam::111122223333:role/role-{digest.hexdigest()[:8]}"


class TestNodesPool:
    """nodes mode: an SNP launch template and the managed node group that launches from it."""

    def test_launch_template_and_node_group(self, render_config, aws_mocks):
        result = render_config(NODES)
        template = one(result, LT, "coco-pool-snp-nodes-template")
        lt = render.unwrap(template.inputs)
        assert lt["cpuOptions"] == {"amdSevSnp": "enabled"}
        assert lt["metadataOptions"]["httpTokens"] == "required"
        assert lt["tags"]["coco-stack-tee"] == "snp"
        assert {t["resourceType"] for t in lt["tagSpecifications"]} == {"instance", "volume"}
        assert "imageId" not in lt and "iamInstanceProfile" not in lt  # EKS refuses these
        group = inputs(result, "aws:eks/nodeGroup:NodeGroup", "coco-pool-snp-nodes-group")
        assert group["instanceTypes"] == ["m6a.xlarge"]  # catalogue default for aws/snp/nodes
        assert group["launchTemplate"] == {"id": f"{template.name}-id", "version": "3"}
        assert group["scalingConfig"] == {"desiredSize": 3, "maxSize": 3, "minSize": 3}
        # EKS takes non-empty label values; the empty worker label goes through the kubelet
        assert group["labels"] == {"coco-stack.io/pool": "snp", "coco-stack.io/tee": "snp"}
        assert kubelet_flags(lt) == ["--node-labels=node.kubernetes.io/worker="]
        assert group["taints"] == [
            {"key": "coco-stack.io/tee", "value": "snp", "effect": "NO_SCHEDULE"}
        ]
        assert group["nodeRoleArn"] == role_arn(result, "coco-cluster-nodes")
        assert (
            one(result, "coco:aws:SnpNodeGroup").parent_urn
            == one(result, "coco:pools:NodePool").urn
        )

    def test_zone_pins_the_subnet(self, render_config, aws_mocks):
        config = {
            **NODES,
            "coco:nodePools": [
                {"name": "snp", "tee": "snp", "mode": "nodes", "zone": "eu-west-1c"}
            ],
        }
        result = render_config(config)
        group = inputs(result, "aws:eks/nodeGroup:NodeGroup", "coco-pool-snp-nodes-group")
        assert group["subnetIds"] == ["coco-cluster-network-private-eu-west-1c-id"]


class TestPeerPods:
    """peer-pods: IRSA role for exactly CAA's service accounts, least-privilege EC2, an SNP
    launch template, and every peer-pods-cm key from a resource output or the spec."""

    def test_trust_policy_exact_subjects(self, render_config, aws_mocks):
        result = render_config(PEER)
        doc = json.loads(
            inputs(result, "aws:iam/role:Role", "coco-peer-pods-infra-caa")["assumeRolePolicy"]
        )
        (st,) = doc["Statement"]
        host = ISSUER.removeprefix("https://")
        assert st["Principal"] == {"Federated": OIDC_ARN}
        assert st["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert st["Condition"] == {
            "StringEquals": {
                f"{host}:aud": "sts.amazonaws.com",
                f"{host}:sub": [
                    "system:serviceaccount:confidential-containers-system:cloud-api-adaptor",
                    "system:serviceaccount:confidential-containers-system:"
                    "peerpodctrl-controller-manager",
                ],
            }
        }
        assert len(SERVICE_ACCOUNTS) == 2

    def test_least_privilege_policy(self, render_config, aws_mocks):
        result = render_config(PEER)
        policy = inputs(result, "aws:iam/rolePolicy:RolePolicy", "coco-peer-pods-infra-caa")[
            "policy"
        ]
        actions = sorted(
            {
                a
                for s in json.loads(policy)["Statement"]
                for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
            }
        )
        assert actions == sorted(
            ["ec2:RunInstances", "ec2:CreateTags", "ec2:TerminateInstances", *iam.READ_ACTIONS]
        )
        assert not any("*" in a for a in actions)
        terminate = statement(policy, "TerminateOwnPodVms")
        assert terminate["Condition"] == {"StringEquals": {"aws:ResourceTag/coco-stack": "test"}}
        launch = statement(policy, "LaunchFromTheStackTemplate")
        assert (
            "arn:aws:ec2:eu-west-1:111122223333:launch-template/launch-template-0example"
            in launch["Resource"]
        )
        assert "arn:aws:ec2:eu-west-1::image/coco-podvm-image-ami-id" in launch["Resource"]
        tagged = statement(policy, "OnlyTaggedPodVms")
        assert tagged["Condition"] == {"StringEquals": {"aws:RequestTag/coco-stack": "test"}}
        assert statement(policy, "TagAtLaunchOnly")["Condition"] == {
            "StringEquals": {"ec2:CreateAction": "RunInstances"}
        }

    def test_create_tags_on_every_kind_tagged_at_launch(self, render_config, aws_mocks):
        """AWS authorizes each tag applied at launch, the launch template's included, as
        ec2:CreateTags on that resource (EC2 guide, supported-iam-actions-tagging.html): the
        template tags instances and volumes, so both must be allowed, and only at launch."""
        result = render_config(PEER)
        policy = inputs(result, "aws:iam/rolePolicy:RolePolicy", "coco-peer-pods-infra-caa")[
            "policy"
        ]
        tag = statement(policy, "TagAtLaunchOnly")
        assert tag["Resource"] == [
            "arn:aws:ec2:eu-west-1:*:instance/*",
            "arn:aws:ec2:eu-west-1:*:volume/*",
        ]
        kinds = {t["resourceType"] for t in inputs(result, LT, PODVM_LT)["tagSpecifications"]}
        assert kinds == {"instance", "volume"}
        assert {arn.split(":")[-1].split("/")[0] for arn in tag["Resource"]} == kinds

    def test_run_instances_on_every_resource_of_the_launch(self, render_config, aws_mocks):
        """RunInstances with the template is authorized against the template, its AMI, subnet
        and security group, and the new instance, network interface and root volume (Service
        Authorization Reference, RunInstances); each only as narrowly as the stack can name it."""
        result = render_config(PEER)
        policy = inputs(result, "aws:iam/rolePolicy:RolePolicy", "coco-peer-pods-infra-caa")[
            "policy"
        ]
        allowed: list[str] = []
        for sid in ("LaunchFromTheStackTemplate", "OnlyTaggedPodVms"):
            found = statement(policy, sid)
            assert found["Action"] == "ec2:RunInstances"
            resource = found["Resource"]
            allowed += [resource] if isinstance(resource, str) else resource
        by_kind = {arn.split(":", 5)[5].split("/")[0]: arn for arn in allowed}
        assert by_kind == {
            "image": "arn:aws:ec2:eu-west-1::image/coco-podvm-image-ami-id",
            "instance": "arn:aws:ec2:eu-west-1:*:instance/*",
            "launch-template": "arn:aws:ec2:eu-west-1:111122223333:launch-template/"
            "launch-template-0example",
            "network-interface": "arn:aws:ec2:eu-west-1:*:network-interface/*",
            "security-group": "arn:aws:ec2:eu-west-1:111122223333:security-group/"
            "security-group-0example",
            "subnet": "arn:aws:ec2:eu-west-1:111122223333:subnet/subnet-0example",
            "volume": "arn:aws:ec2:eu-west-1:*:volume/*",
        }
        assert len(allowed) == len(by_kind)
        # the template names no key pair, so RunInstances never needs key-pair/*
        assert "keyName" not in inputs(result, LT, PODVM_LT)

    def test_podvm_launch_template(self, render_config, aws_mocks):
        result = render_config(PEER)
        lt = inputs(result, LT, PODVM_LT)
        assert lt["cpuOptions"] == {"amdSevSnp": "enabled"}
        assert lt["imageId"] == "coco-podvm-image-ami-id"
        assert lt["instanceType"] == "m6a.large"
        nic = lt["networkInterfaces"][0]
        assert nic["subnetId"] == "coco-peer-pods-infra-subnet-id"
        assert nic["securityGroups"] == ["coco-peer-pods-infra-sg-id"]
        assert nic["associatePublicIpAddress"] == "false"
        assert lt["tags"]["coco-stack-tee"] == "snp"

    def test_config_keys_from_outputs_and_spec(self, render_config, aws_mocks):
        result = render_config(PEER)
        values = inputs(result, RELEASE, "coco-peer-pods-chart")["values"]
        cm = values["providerConfigs"]["aws"]
        from_outputs = {
            "PODVM_AMI_ID": "coco-podvm-image-ami-id",
            "AWS_SUBNET_ID": "coco-peer-pods-infra-subnet-id",
            "AWS_SG_IDS": "coco-peer-pods-infra-sg-id",
            "PODVM_LAUNCHTEMPLATE_NAME": "c1-podvm",
        }
        from_spec = {"AWS_REGION": "eu-west-1", "PODVM_INSTANCE_TYPE": "m6a.large"}
        for key in peerpods.REQUIRED_KEYS["aws"]:
            assert cm[key] == {**from_outputs, **from_spec}[key], key
        assert cm["PODVM_LAUNCHTEMPLATE_NAME"] == inputs(result, LT, PODVM_LT)["name"]
        assert cm["USE_PODVM_LAUNCHTEMPLATE"] == "true" and cm["DISABLECVM"] == "false"
        assert cm["TAGS"] == "coco-stack=test,coco-stack-tee=snp"
        assert not peerpods.CREDENTIAL_KEYS["aws"] & set(cm)
        # IRSA: the role on the service accounts, no credentials Secret
        annotations = values["daemonset"]["serviceAccount"]["annotations"]
        assert annotations == {
            "eks.amazonaws.com/role-arn": role_arn(result, "coco-peer-pods-infra-caa")
        }
        assert values["secrets"]["existingSecretName"] == ""
        assert [
            r
            for r in resources_of(result, "kubernetes:core/v1:Secret")
            if r.name.startswith("coco-peer-pods")
        ] == []

    def test_nodes_reach_pod_vms(self, render_config, aws_mocks):
        result = render_config(PEER)
        rules = [
            render.unwrap(r.inputs)
            for r in resources_of(result, INGRESS)
            if r.name.startswith("coco-peer-pods-infra-sg-")
        ]
        ports = sorted((r["ipProtocol"], r["fromPort"], r["toPort"]) for r in rules)
        assert ports == [("tcp", 15150, 15150), ("udp", 4789, 4789)]
        assert {r["cidrIpv4"] for r in rules} == {"10.0.0.0/16"}
        assert {r["securityGroupId"] for r in rules} == {"coco-peer-pods-infra-sg-id"}
        subnet = inputs(result, "aws:ec2/subnet:Subnet", "coco-peer-pods-infra-subnet")
        assert subnet["cidrBlock"] == "10.0.224.0/19"

    def test_pod_vms_reach_nodes(self, render_config, aws_mocks, cluster_sg):
        """The pod VM's VXLAN device has the worker node as its remote (CAA v0.22.0
        podnode.go), and EKS managed nodes carry the cluster security group, which admits only
        its own members: the stack opens UDP 4789 on it to the pod-VM group, and nothing else."""
        result = render_config(PEER)
        node_side = [
            render.unwrap(r.inputs)
            for r in resources_of(result, INGRESS)
            if not r.name.startswith("coco-peer-pods-infra-sg-")
        ]
        assert node_side == [
            {
                "description": "VXLAN pod network from coco-stack pod VMs",
                "fromPort": 4789,
                "ipProtocol": "udp",
                "referencedSecurityGroupId": "coco-peer-pods-infra-sg-id",
                "region": "eu-west-1",
                "securityGroupId": cluster_sg,
                "toPort": 4789,
            }
        ]

    def test_secret_kbs_value_not_in_render(self, render_config, aws_mocks, tmp_path):
        config = {
            **PEER,
            "coco:kbs": {
                **PEER["coco:kbs"],
                "resources": [{"path": "default/key/1", "value": "AWS-TOP-SECRET"}],
            },
        }
        result = render_config(config, secure=frozenset({"coco:kbs.resources[0].value"}))
        out = tmp_path / "out"
        render.write(result, out)
        blob = b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())
        assert b"AWS-TOP-SECRET" not in blob and b"[secret]" in blob


class TestImage:
    """The built raw disk goes to S3, is imported with the stack's vmimport role and becomes a
    UEFI, TPM 2.0 AMI whose id is PODVM_AMI_ID."""

    def test_publish_chain(self, render_config, aws_mocks):
        result = render_config(PEER)
        obj = inputs(result, "aws:s3/bucketObjectv2:BucketObjectv2")
        assert obj["key"] == f"podvm/{'d' * 64}.raw"
        assert obj["source"]["$asset"]["path"].endswith("/build/images/test/disk.raw")
        trust = json.loads(
            inputs(result, "aws:iam/role:Role", "coco-podvm-image-vmimport")["assumeRolePolicy"]
        )["Statement"][0]
        assert trust["Principal"] == {"Service": "vmie.amazonaws.com"}
        assert trust["Condition"] == {"StringEquals": {"sts:Externalid": "vmimport"}}
        policy = json.loads(
            inputs(result, "aws:iam/rolePolicy:RolePolicy", "coco-podvm-image-vmimport")["policy"]
        )
        assert policy["Statement"][0]["Resource"] == [
            f"arn:aws:s3:::{BUCKET}",
            f"arn:aws:s3:::{BUCKET}/*",
        ]
        snap = inputs(result, "aws:ebs/snapshotImport:SnapshotImport")
        assert snap["diskContainer"] == {
            "format": "RAW",
            "userBucket": {"s3Bucket": BUCKET, "s3Key": obj["key"]},
        }
        vmimport_arn = role_arn(result, "coco-podvm-image-vmimport")
        assert snap["roleName"] == vmimport_arn.rsplit("/", 1)[1]  # the created role's name
        ami = inputs(result, "aws:ec2/ami:Ami")
        assert (ami["bootMode"], ami["tpmSupport"], ami["architecture"]) == (
            "uefi",
            "v2.0",
            "x86_64",
        )
        assert ami["enaSupport"] is True and ami["imdsSupport"] == "v2.0"
        assert ami["ebsBlockDevices"] == [
            {
                "deviceName": "/dev/xvda",
                "snapshotId": "coco-podvm-image-snapshot-id",
                "deleteOnTermination": True,
                "volumeType": "gp3",
            }
        ]
        assert ami["rootDeviceName"] == "/dev/xvda"
        assert ami["tags"]["coco-stack-tee"] == "snp"
        assert ami["name"] == f"test-podvm-{'d' * 16}"

    def test_measurements_reach_the_kbs(self, render_config, aws_mocks):
        result = render_config(PEER)
        data = inputs(result, "kubernetes:core/v1:ConfigMap", "coco-kbs-reference-values")["data"]
        # the image's value joins the one the stack declares (PEER's test value)
        assert data["snp_launch_measurement"] == kbs_config.reference_value_record(
            "snp_launch_measurement", ["m" * 96, "test-snp_launch_measurement"]
        )

    def test_existing_ami_skips_publishing(self, render_config, aws_mocks):
        config = {**PEER, "coco:image": {"podvmImage": "ami-0123456789abcdef0"}}
        result = render_config(config)
        assert resources_of(result, "aws:ec2/ami:Ami") == []
        assert resources_of(result, "aws:ebs/snapshotImport:SnapshotImport") == []
        cm = inputs(result, RELEASE, "coco-peer-pods-chart")["values"]["providerConfigs"]["aws"]
        assert cm["PODVM_AMI_ID"] == "ami-0123456789abcdef0"
        assert inputs(result, LT, PODVM_LT)["imageId"] == "ami-0123456789abcdef0"


class TestRefusals:
    """AWS mistakes stop before anything is registered, at the key that is wrong."""

    @pytest.mark.parametrize("tee", ["tdx", "sev", "sgx"])
    def test_only_snp_on_aws(self, render_config, tee):
        config = {**PEER, "coco:nodePools": [{"name": "x", "tee": tee}]}
        with pytest.raises(SpecError) as info:
            render_config(config)
        issue = next(i for i in info.value.issues if i.path == "coco:nodePools[0].tee")
        assert "not offered on aws" in issue.message
        assert "gcp" in issue.hint or "azure" in issue.hint  # where it is offered

    @pytest.mark.parametrize(
        ("pool", "path", "words"),
        [
            ({"instanceType": "m6i.large"}, "coco:nodePools[0].instanceType", "not a confidential"),
            ({"instanceType": "Standard_DC4as_v5"}, "coco:nodePools[0].instanceType", "not an aws"),
            ({"zone": "eu-west-1"}, "coco:nodePools[0].zone", "not an aws zone"),
            ({"zone": "us-east-2a"}, "coco:nodePools[0].zone", "not in the EKS cluster's"),
            ({"region": "us-east-2"}, "coco:nodePools[0].region", "not in the EKS cluster's"),
        ],
    )
    def test_bad_pool(self, render_config, pool, path, words):
        config = {**PEER, "coco:nodePools": [{"name": "x", "tee": "snp", **pool}]}
        with pytest.raises(SpecError) as info:
            render_config(config)
        assert [(i.path, words in i.message) for i in info.value.issues] == [(path, True)]

    def test_eks_needs_a_region(self, render_config):
        with pytest.raises(SpecError) as info:
            render_config({**PEER, "coco:cluster": {"provider": "eks"}})
        assert [i.path for i in info.value.issues] == ["coco:cluster.region"]

    def test_one_podvm_size(self, render_config):
        config = {
            **PEER,
            "coco:nodePools": [
                {"name": "a", "tee": "snp"},
                {"name": "b", "tee": "snp", "instanceType": "c6a.2xlarge"},
            ],
        }
        with pytest.raises(SpecError) as info:
            render_config(config)
        (issue,) = info.value.issues
        assert issue.path == "coco:nodePools[1].instanceType"
        assert "m6a.large" in issue.hint
