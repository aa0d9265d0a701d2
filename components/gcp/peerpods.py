"""CaaInfrastructure: what cloud-api-adaptor needs in GCP to start confidential pod VMs.

Scope: a firewall rule that lets the worker nodes reach the pod VMs (agent-protocol-forwarder
and VXLAN), a Google service account for CAA with two custom roles holding only the permissions
its GCP provider uses (those on instances bound with an IAM condition to pod VMs, named
podvm-*), the key CAA has to be given (see below), and the GCP_* ids for peer-pods-cm. The
spec supplies GCP_ZONE, GCP_MACHINE_TYPE and GCP_CONFIDENTIAL_TYPE
(components.peerpods.provider_config).

Why a key and not Workload Identity Federation (checked in cloud-api-adaptor v0.22.0):
- src/cloud-api-adaptor/entrypoint.sh `gcp()` runs `test_vars GCP_CREDENTIALS ...` and exits
  when it is empty, then writes it to a file and exports GOOGLE_APPLICATION_CREDENTIALS
  ("Avoid using node's metadata service credentials"), so CAA does not start without a key,
  although src/cloud-providers/gcp/provider.go would fall back to default credentials;
- the CAA daemonset runs with hostNetwork: true (peerpods chart templates/daemonset.yaml), and
  GKE's metadata server does not give host-network pods their Kubernetes service account's
  identity (GKE docs "About Workload Identity Federation for GKE", limitations; unverified).
So the stack creates the key; it is a Pulumi secret from the provider output on, and reaches
only the stack-owned Secret peer-pods-secret (components.peerpods: chart in reference mode),
never Helm values or peer-pods-cm. Rotate it by changing `KEY_GENERATION`.
Non-goals: Cloud NAT for pod VMs (CAA gives each an ephemeral external IP, provider.go),
resource-manager TAGS, cleanup of orphaned pod VMs (peerpod-ctrl v0.22.0 has no GCP controller:
src/peerpod-ctrl/controllers has no gcp.go).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from spec.model import NodePool, Spec

from ..peerpods import CloudPeerPods
from .cluster import GkeCluster
from .common import gcp_name

# Ports the worker node opens on a pod VM: the agent-protocol-forwarder (src/cloud-api-adaptor/
# pkg/forwarder/forwarder.go@v0.22.0 DefaultListenPort 15150; upstream's GKE test VPC opens only
# this, test/provisioner/gcp/vpc.go) and the VXLAN tunnel (pkg/podnetwork/tunneler/vxlan/
# workernode.go DefaultVXLANPort 4789).
FORWARDER_PORT = "15150"
VXLAN_PORT = "4789"
# Permissions of CAA's calls in src/cloud-providers/gcp/provider.go@v0.22.0, mapped with the
# Compute Engine permissions reference (cloud.google.com/compute/docs/reference/rest/v1/
# instances/insert, "IAM permissions"; unverified against a live run):
# instances.insert with a boot disk from the image, a subnetwork, an external NAT access config
# and user-data metadata; instances.get/delete; machineTypes.get (instance size list);
# images.get (image size); zoneOperations.get (op.Wait). The pod VMs get no service account, so
# CAA needs no iam.serviceAccountUser.
# Split in two roles so the key in peer-pods-secret cannot delete or re-script (setMetadata:
# startup scripts) every VM of the project, GKE nodes included:
# - on instances, granted only for pod VMs (POD_VM_CONDITION);
CAA_INSTANCE_PERMISSIONS = (
    "compute.instances.create",
    "compute.instances.delete",
    "compute.instances.get",
    "compute.instances.setMetadata",
)
# - on what a pod VM is made from or polled through, unconditioned: the image, the subnet, the
#   machine types and zone operations are not named after the pod VM, and the boot disk's name
#   is only GCE's default (unverified that it is the instance name), so a name condition could
#   refuse CAA's own calls. None of these lets CAA touch an existing VM or disk.
CAA_SUPPORT_PERMISSIONS = (
    "compute.disks.create",
    "compute.images.get",
    "compute.images.useReadOnly",
    "compute.machineTypes.get",
    "compute.subnetworks.use",
    "compute.subnetworks.useExternalIp",
    "compute.zoneOperations.get",
)
# CAA names every pod VM "podvm-<pod name>-<sandbox id>" (src/cloud-providers/util/instance.go
# @v0.22.0 GenerateInstanceName, prefix "podvm"; called by gcp/provider.go CreateInstance).
POD_VM_PREFIX = "podvm-"
# IAM Conditions see Compute Engine instances as resource.type "compute.googleapis.com/Instance"
# with resource.name "projects/<p>/zones/<z>/instances/<name>", and projects accept conditional
# role bindings (cloud.google.com/iam/docs/conditions-resource-attributes and
# cloud.google.com/iam/help/conditions/resource-policies). That instances.create is checked
# against the new instance's name is unverified against a live run.
POD_VM_CONDITION = (
    'resource.type == "compute.googleapis.com/Instance" && '
    f'resource.name.extract("/instances/{{name}}").startsWith("{POD_VM_PREFIX}")'
)
# Bump to replace CAA's key (a new key is created before the old one is deleted).
KEY_GENERATION = "1"


def decode_key(private_key: str | None) -> str:
    """serviceaccount.Key.private_key is the JSON key file, base64-encoded (pulumi_gcp 10.2.0)."""
    return base64.b64decode(private_key).decode() if private_key else ""


class CaaInfrastructure(pulumi.ComponentResource):
    """Firewall, identity and ids for cloud-api-adaptor's GCP provider."""

    def __init__(
        self,
        name: str,
        spec: Spec,
        pools: Sequence[NodePool],
        cluster: GkeCluster,
        image_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("coco:gcp:CaaInfrastructure", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        project = cluster.project
        base = gcp_name(spec.cluster.name or spec.stack, 40)
        self.firewall = gcp.compute.Firewall(
            f"{name}-to-pod-vms",
            name=gcp_name(f"{base}-caa-to-pod-vms"),
            project=project,
            network=cluster.network,
            direction="INGRESS",
            source_ranges=[cluster.node_range],
            allows=[
                gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[FORWARDER_PORT]),
                gcp.compute.FirewallAllowArgs(protocol="udp", ports=[VXLAN_PORT]),
            ],
            description="coco-stack: worker nodes to peer-pod VMs (CAA forwarder, VXLAN)",
            opts=child,
        )
        self.account = gcp.serviceaccount.Account(
            f"{name}-sa",
            account_id=gcp_name(f"{base}-caa", 30),
            display_name=f"coco-stack cloud-api-adaptor of {base}",
            project=project,
            opts=child,
        )
        member = self.account.email.apply(lambda e: f"serviceAccount:{e}")
        support_role = gcp.projects.IAMCustomRole(
            f"{name}-role",
            role_id=gcp_name(f"{base}-caa", 60).replace("-", "_"),
            title=f"coco-stack cloud-api-adaptor ({base})",
            permissions=sorted(CAA_SUPPORT_PERMISSIONS),
            project=project,
            opts=child,
        )
        self.grant = gcp.projects.IAMMember(
            f"{name}-grant", project=project, role=support_role.name, member=member, opts=child
        )
        vm_role = gcp.projects.IAMCustomRole(
            f"{name}-vm-role",
            role_id=gcp_name(f"{base}-caa-vms", 60).replace("-", "_"),
            title=f"coco-stack cloud-api-adaptor pod VMs ({base})",
            permissions=sorted(CAA_INSTANCE_PERMISSIONS),
            project=project,
            opts=child,
        )
        self.vm_grant = gcp.projects.IAMMember(
            f"{name}-vm-grant",
            project=project,
            role=vm_role.name,
            member=member,
            condition=gcp.projects.IAMMemberConditionArgs(
                title="coco-stack pod VMs only",
                description=f"instances named {POD_VM_PREFIX}* (cloud-api-adaptor's pod VMs)",
                expression=POD_VM_CONDITION,
            ),
            opts=child,
        )
        key = gcp.serviceaccount.Key(
            f"{name}-key",
            service_account_id=self.account.name,
            keepers={"generation": KEY_GENERATION},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.grant, self.vm_grant]),
        )
        # the SDK marks privateKey secret (additional_secret_outputs in pulumi_gcp's Key), but
        # mocks and plain applies do not keep that mark: wrap it again
        key_file: pulumi.Output[str] = key.private_key.apply(decode_key)
        credentials: pulumi.Output[str] = pulumi.Output.secret(key_file)
        self.peer_pods = CloudPeerPods(
            provider="gcp",
            ids={
                "GCP_PROJECT_ID": project,
                "GCP_NETWORK": cluster.network,
                "GCP_SUBNETWORK": cluster.subnetwork,
                "PODVM_IMAGE_NAME": image_id,
            },
            credentials={"GCP_CREDENTIALS": credentials},
        )
        self.register_outputs({"serviceAccount": self.account.email})
