"""Publishing the stack's guest image as an Azure Compute Gallery image version (AZURE_IMAGE_ID).

Steps: a private storage account and container; the GuestImage's fixed VHD (disk.vhd) uploaded
as a page blob; a gallery, an image definition that allows confidential VMs and a version built
from the blob. The version id is what CAA boots pod VMs from; the image's measurements reach the
KBS through components.image, not through Azure.

Why the upload is a command and not a storage.Blob resource: azure-native's Blob creates block
and append blobs only (pulumi/pulumi-azure-native#2151, open), and Azure builds disks and image
versions from page blobs only (learn.microsoft.com/azure/virtual-machines/linux/
create-upload-generic, "upload as a page blob"). `components.azure.upload` does that one upload
with azure-storage-blob, keyed on the VHD's sha256, so an unchanged image is never re-uploaded.

Non-goals: replication to other regions, community or shared galleries, customer-managed keys,
keeping old versions: a new VHD digest names a new version, and a changed name replaces the
version resource (azure-native replaces on changes of URL path properties,
pulumi/pulumi-azure-native#77), so Pulumi creates the new version and then deletes the old one
in the same update. Old VHD blobs are not cleaned up: the upload command has no delete step, so
they stay in the container until the storage account is destroyed.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from typing import Any

import pulumi
import pulumi_command as command
from pulumi_azure_native import compute, storage

from spec.model import Spec

from ..clouds import ManagedCluster
from ..image import GuestImage
from . import common
from .cluster import AksCluster

VHD = "disk.vhd"  # images.build OUTPUT_FILES["azure-vhd"]
CONTAINER = "podvm-images"
# CAA passes an OS profile (computer name, SSH key, user data) when it creates a pod VM
# (cloud-api-adaptor src/cloud-providers/azure/provider.go@v0.22.0 getVMParameters), which Azure
# accepts only for generalized images; pod VMs are generation 2 confidential VMs
# (SecurityType ConfidentialVM, VMGuestStateOnly disk encryption, same file).
# "ConfidentialVmSupported" lets the definition serve confidential and ordinary VMs, as the
# upstream podvm images do (learn.microsoft.com/azure/virtual-machines/image-version,
# "SecurityType"); policy/coco_policies.py accepts it.
SECURITY_TYPE = "ConfidentialVmSupported"


def storage_account_name(subscription: str, group: str, cluster: str) -> str:
    """A storage account name: 3-24 lowercase letters and digits, unique across Azure. Derived
    from the subscription, resource group and cluster, so it is stable and never random."""
    digest = hashlib.sha256(f"{subscription}/{group}/{cluster}".encode()).hexdigest()
    return f"coco{digest[:16]}"


def image_version(digest: str) -> str:
    """A gallery image version (MAJOR.MINOR.PATCH, 32-bit integers) derived from the VHD's
    sha256, so each distinct image gets its own version and an unchanged one keeps it."""
    if len(digest) < 8:
        return "1.0.0"
    return f"1.{int(digest[0:4], 16)}.{int(digest[4:8], 16)}"


def upload_command(python: str, account_url: str, blob: str, path: str) -> str:
    return shlex.join(
        [
            python, "-m", "components.azure.upload",
            "--account-url", account_url,
            "--container", CONTAINER,
            "--blob", blob,
            path,
        ]
    )


class PodVmImage(pulumi.ComponentResource):
    """The GuestImage published as a gallery image version; `image_id` is its resource id."""

    def __init__(
        self,
        name: str,
        args: tuple[Spec, AksCluster, GuestImage],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("coco:azure:PodVmImage", name, None, opts)
        spec, cluster, image = args
        child = pulumi.ResourceOptions(parent=self)
        tees = sorted({p.tee for p in spec.node_pools if p.mode == "peer-pods"})
        marker = ",".join(tees) or None
        cluster_name = common.cluster_name(spec)
        group = cluster.resource_group_name
        account_name = pulumi.Output.all(cluster.subscription_id, group).apply(
            lambda a: storage_account_name(str(a[0]), str(a[1]), cluster_name)
        )
        account = storage.StorageAccount(
            f"{name}-storage",
            resource_group_name=group,
            account_name=account_name,
            location=cluster.location,
            kind="StorageV2",
            sku=storage.SkuArgs(name="Standard_LRS"),
            allow_blob_public_access=False,
            minimum_tls_version="TLS1_2",
            enable_https_traffic_only=True,
            tags=common.tags(),
            opts=child,
        )
        container = storage.BlobContainer(
            f"{name}-container",
            resource_group_name=group,
            account_name=common.named(account, account_name),
            container_name=CONTAINER,
            public_access=storage.PublicAccess.NONE,
            opts=child,
        )
        digest = image.digests.apply(lambda d: str(d.get(VHD, "")))
        blob = digest.apply(lambda d: f"podvm-{d[:16] or 'unbuilt'}.vhd")
        endpoint = account.primary_endpoints.apply(_blob_endpoint)
        key = storage.list_storage_account_keys_output(
            resource_group_name=group, account_name=common.named(account, account_name)
        ).apply(lambda r: str((r.keys[0].value if r.keys else "") or ""))
        secret_key: pulumi.Output[str] = pulumi.Output.secret(key)
        path = image.artifacts.apply(lambda a: str(a.get(VHD, "")))
        self.upload = command.local.Command(
            f"{name}-upload",
            create=pulumi.Output.all(endpoint, blob, path).apply(
                lambda a: upload_command(sys.executable, str(a[0]), str(a[1]), str(a[2]))
            ),
            environment={"AZURE_STORAGE_KEY": secret_key},
            triggers=[digest],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[container]),
        )
        gallery_name = f"{common.alnum(cluster_name, 60)}podvm"
        gallery = compute.Gallery(
            f"{name}-gallery",
            resource_group_name=group,
            gallery_name=gallery_name,
            location=cluster.location,
            description="coco-stack pod VM images",
            tags=common.tags(),
            opts=child,
        )
        definition = compute.GalleryImage(
            f"{name}-definition",
            resource_group_name=group,
            gallery_name=common.named(gallery, gallery_name),
            gallery_image_name="podvm",
            location=cluster.location,
            os_type=compute.OperatingSystemTypes.LINUX,
            os_state=compute.OperatingSystemStateTypes.GENERALIZED,
            hyper_v_generation="V2",
            architecture="x64",
            features=[compute.GalleryImageFeatureArgs(name="SecurityType", value=SECURITY_TYPE)],
            identifier=compute.GalleryImageIdentifierArgs(
                publisher="coco-stack", offer="podvm", sku=spec.image.recipe or "podvm"
            ),
            tags=common.tags(marker),
            opts=child,
        )
        version = compute.GalleryImageVersion(
            f"{name}-version",
            resource_group_name=group,
            gallery_name=gallery_name,
            gallery_image_name=common.named(definition, "podvm"),
            gallery_image_version_name=digest.apply(image_version),
            location=cluster.location,
            storage_profile=compute.GalleryImageVersionStorageProfileArgs(
                os_disk_image=compute.GalleryOSDiskImageArgs(
                    host_caching=compute.HostCaching.READ_ONLY,
                    source=compute.GalleryDiskImageSourceArgs(
                        storage_account_id=account.id,
                        uri=pulumi.Output.concat(endpoint, CONTAINER, "/", blob),
                    ),
                )
            ),
            publishing_profile=compute.GalleryImageVersionPublishingProfileArgs(
                target_regions=[
                    compute.TargetRegionArgs(
                        name=cluster.location,
                        regional_replica_count=1,
                        storage_account_type="Standard_LRS",
                    )
                ],
            ),
            tags=common.tags(marker),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.upload]),
        )
        self.image_id: pulumi.Output[str] = version.id
        self.register_outputs({"imageId": self.image_id})


def _blob_endpoint(endpoints: Any) -> str:
    # primaryEndpoints.blob, e.g. https://<account>.blob.core.windows.net/
    blob = getattr(endpoints, "blob", None) if endpoints is not None else None
    return str(blob or "")


def publish_image(
    name: str,
    spec: Spec,
    cluster: ManagedCluster,
    image: GuestImage,
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    if not isinstance(cluster, AksCluster):
        raise TypeError("Azure pod VM images are published next to an AKS cluster")
    return PodVmImage(name, (spec, cluster, image), opts).image_id
