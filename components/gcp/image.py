"""PodVmImage: the stack's GuestImage published as a Compute Engine image for peer pods.

Scope: a private bucket (uniform access, no public access), the recipe's disk.raw.tar.gz
uploaded into it, and a compute.Image built from that raw disk with the guest OS features a
confidential VM of the peer pods' TEE needs. The image name carries the recipe's content hash,
so a changed recipe publishes a new image (created before the old one is deleted) and
PODVM_IMAGE_NAME follows it. The measurements reach the KBS through the GuestImage itself
(components.stack), not through this component.
Non-goals: image families and sharing across projects, Shielded VM secure-boot keys, cleaning
old images out of the bucket beyond what Pulumi replaces.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from spec.model import Spec

from ..image import GuestImage
from ..peerpods import GCP_CONFIDENTIAL_TYPE
from .common import PART_OF_LABEL, TEE_LABEL, cluster_name, gcp_name

# The GuestImage artifact Compute Engine imports: a gzip'd GNU tar holding one file disk.raw
# (images/report.py OUTPUT_FILES["gcp-tar"]; cloud.google.com/compute/docs/import/
# import-existing-image: "the tar file must use the GNU tar format, the disk must be disk.raw").
GCP_TAR = "disk.raw.tar.gz"
# Guest OS features of every pod-VM image: it boots a UKI through UEFI (images/), gVNIC is the
# only NIC of C3 machines (TDX) and VIRTIO_SCSI_MULTIQUEUE is the default disk queueing.
# Names: pulumi_gcp 10.2.0 ImageGuestOsFeatureArgs.type. The image's kernel must have the gve
# and nvme drivers for C3: the pinned kernel (spec/versions.py KERNEL_PACKAGE) builds NVMe in
# (CONFIG_BLK_DEV_NVME=y) and gve as a module the podvm recipe loads (read from its
# /boot/config and module tree).
BASE_FEATURES = ("GVNIC", "UEFI_COMPATIBLE", "VIRTIO_SCSI_MULTIQUEUE")
# The capability a confidential VM of each type requires of its boot image
# (cloud.google.com/confidential-computing/confidential-vm/docs/create-custom-confidential-vm-
# images; policy/coco_policies.py GCP_GUEST_OS_FEATURE uses the same table).
TEE_FEATURE = {"SEV": "SEV_CAPABLE", "SEV_SNP": "SEV_SNP_CAPABLE", "TDX": "TDX_CAPABLE"}


def guest_os_features(tee: str) -> list[str]:
    """Sorted guest OS features of a pod-VM image for `tee` (sev, snp or tdx)."""
    if tee not in GCP_CONFIDENTIAL_TYPE:
        raise ValueError(f"no confidential GCP VM for tee {tee!r}")
    return sorted({*BASE_FEATURES, TEE_FEATURE[GCP_CONFIDENTIAL_TYPE[tee]]})


def peer_pods_tee(spec: Spec) -> str:
    """The one TEE of the stack's GCP peer-pods pools (CAA takes one GCP_CONFIDENTIAL_TYPE)."""
    tees = sorted({p.tee for p in spec.node_pools if p.mode == "peer-pods" and p.provider == "gcp"})
    if len(tees) != 1:
        raise ValueError(f"GCP peer pods take exactly one TEE per stack, the spec has {tees}")
    return tees[0]


class PodVmImage(pulumi.ComponentResource):
    """The uploaded disk and the compute image peer pods boot."""

    def __init__(
        self,
        name: str,
        spec: Spec,
        image: GuestImage,
        project: str,
        region: str,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("coco:gcp:PodVmImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tee = peer_pods_tee(spec)
        labels = {**PART_OF_LABEL, TEE_LABEL: tee}
        base = cluster_name(spec)
        version = image.recipe_hash[:12]
        bucket = gcp.storage.Bucket(
            f"{name}-bucket",
            name=gcp_name(f"{project}-{base}-podvm"),
            location=region,
            project=project,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            force_destroy=True,  # the stack owns every object in it
            labels=labels,
            opts=child,
        )
        # Nothing is built under `coco render` (mocks): the path then names the missing file and
        # a real upload would fail loudly rather than publish something else.
        source = image.artifacts.apply(
            lambda files: pulumi.FileAsset(files.get(GCP_TAR, f"<not built>/{GCP_TAR}"))
        )
        upload = gcp.storage.BucketObject(
            f"{name}-upload",
            bucket=bucket.name,
            name=f"podvm-{version}.tar.gz",
            source=source,
            content_type="application/gzip",
            opts=child,
        )
        self.image = gcp.compute.Image(
            f"{name}-image",
            name=gcp_name(f"{base}-podvm-{tee}-{version}"),
            project=project,
            raw_disk=gcp.compute.ImageRawDiskArgs(
                source=pulumi.Output.concat(
                    "https://storage.googleapis.com/", upload.bucket, "/", upload.name
                )
            ),
            guest_os_features=[
                gcp.compute.ImageGuestOsFeatureArgs(type=f) for f in guest_os_features(tee)
            ],
            labels=labels,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=False),
        )
        # CAA builds projects/<GCP_PROJECT_ID>/global/images/<name> from a bare name
        # (src/cloud-providers/gcp/provider.go@v0.22.0 CreateInstance)
        self.image_name: pulumi.Output[str] = self.image.name
        self.register_outputs({"imageName": self.image_name})
