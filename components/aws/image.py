"""Publishing the stack's guest image as the SEV-SNP pod-VM AMI.

Steps (docs.aws.amazon.com/vm-import/latest/userguide/vmimport-import-snapshot.html): upload the
GuestImage's raw disk to a private S3 bucket, import it as an EBS snapshot with the VM Import
service role the stack creates (trusted by vmie.amazonaws.com with external id "vmimport",
allowed to read that one bucket: required-permissions.html), and register an AMI from the
snapshot. The AMI boots UEFI only with NitroTPM 2.0 and IMDSv2 (SEV-SNP needs a uefi or
uefi-preferred AMI: docs.aws.amazon.com/AWSEC2/latest/UserGuide/sev-snp.html#snp-requirements;
NitroTPM needs tpm_support v2.0 and UEFI: enable-nitrotpm-prerequisites.html), the settings
cloud-api-adaptor's own test provisioner registers its AMI with
(src/cloud-api-adaptor/test/provisioner/aws/provision_common.go@v0.22.0 RegisterImage).

The object key and AMI name carry the disk's sha256: a rebuilt image is a new object, a new
snapshot and a new AMI, so a pod VM never boots bytes the KBS holds no measurements for. The
measurements themselves reach the KBS from the GuestImage (components.stack), not from here.

Non-goals: copying the AMI to other regions, sharing it with other accounts, deleting old AMIs
(Pulumi replaces them), KMS-encrypted snapshots.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from spec.model import Spec

from ..image import GuestImage
from . import _common, iam

DISK = "disk.raw"  # images/report.py OUTPUT_FILES: the raw disk is what VM Import takes as RAW
ROOT_DEVICE = "/dev/xvda"


def _peer_tee(spec: Spec) -> str:
    tees = sorted({p.tee for p in spec.node_pools if p.provider == "aws" and p.mode == "peer-pods"})
    return tees[0] if tees else "snp"


class PodVmAmi(pulumi.ComponentResource):
    """S3 upload, VM Import role, EBS snapshot import and the UEFI/TPM 2.0 AMI."""

    def __init__(
        self,
        name: str,
        spec: Spec,
        region: str,
        image: GuestImage,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("coco:aws:PodVmAmi", name, None, opts)
        here = _common.child(self)
        tags = _common.tags(spec)
        marked = _common.tags(spec, _peer_tee(spec))
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=f"{spec.stack[:30]}-podvm-",
            force_destroy=True,  # holds only uploads of the stack's own image
            region=region,
            tags=tags,
            opts=here,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-bucket",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            region=region,
            opts=here,
        )
        digest = image.digests.apply(lambda d: d.get(DISK, "unbuilt"))
        disk = aws.s3.BucketObjectv2(
            f"{name}-disk",
            bucket=bucket.id,
            key=digest.apply(lambda d: f"podvm/{d}.raw"),
            # the path the build wrote; under `coco render` nothing was built and a real run
            # without the file fails with this path in the message
            source=image.artifacts.apply(lambda a: pulumi.FileAsset(a.get(DISK) or _unbuilt())),
            region=region,
            tags=tags,
            opts=here,
        )
        role = aws.iam.Role(
            f"{name}-vmimport",
            description="VM Import: read the pod-VM disk and create its snapshot",
            assume_role_policy=iam.vmimport_trust(),
            tags=tags,
            opts=here,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-vmimport",
            role=role.name,
            policy=bucket.bucket.apply(lambda b: iam.vmimport_policy(b or "")),
            opts=here,
        )
        snapshot = aws.ebs.SnapshotImport(
            f"{name}-snapshot",
            description=digest.apply(lambda d: f"coco-stack pod VM disk sha256:{d}"),
            disk_container=aws.ebs.SnapshotImportDiskContainerArgs(
                format="RAW",
                user_bucket=aws.ebs.SnapshotImportDiskContainerUserBucketArgs(
                    s3_bucket=bucket.bucket, s3_key=disk.key
                ),
            ),
            role_name=role.name,
            region=region,
            tags=marked,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.ami = aws.ec2.Ami(
            f"{name}-ami",
            name=digest.apply(lambda d: f"{spec.stack}-podvm-{d[:16]}"),
            description="coco-stack SEV-SNP pod VM",
            architecture="x86_64",
            boot_mode="uefi",
            tpm_support="v2.0",
            imds_support="v2.0",
            ena_support=True,
            virtualization_type="hvm",
            root_device_name=ROOT_DEVICE,
            ebs_block_devices=[
                aws.ec2.AmiEbsBlockDeviceArgs(
                    device_name=ROOT_DEVICE,
                    snapshot_id=snapshot.id,
                    delete_on_termination=True,
                    volume_type="gp3",
                )
            ],
            region=region,
            tags=marked,
            opts=here,
        )
        self.image_id: pulumi.Output[str] = self.ami.id
        self.register_outputs({"imageId": self.image_id})


def _unbuilt() -> str:
    return f"<{DISK} was not built>"


def publish_image(
    name: str,
    spec: Spec,
    cluster: Any,
    image: GuestImage,
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    region = getattr(cluster, "region", None) or _common.region(spec)
    return PodVmAmi(name, spec, region, image, opts).image_id
