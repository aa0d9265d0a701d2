"""Rules for `coco:image`: the recipe, and the pod-VM image every cloud peer-pods pool needs."""

from __future__ import annotations

from spec.model import Image, NodePool, ScratchSpace

from .base import Collector


def podvm_image(out: Collector, image: Image, pools: list[NodePool]) -> None:
    """Cloud peer pods boot a pod-VM image: the recipe's, published by the stack, or one the
    user names. IBM Cloud pools name their own (coco-stack cannot publish there)."""
    clouds = sorted(
        {p.provider or "" for p in pools if p.mode == "peer-pods"} & {"azure", "aws", "gcp"}
    )
    if clouds and image.recipe is None and image.podvm_image is None:
        out.error(
            "coco:image.podvmImage",
            f"{clouds[0]} peer pods need a pod-VM image and the stack has none",
            "set coco:image.recipe: podvm (the stack builds and publishes it) or podvmImage to "
            "an image already in the cloud",
        )
    if image.podvm_image is not None and not clouds:
        out.error(
            "coco:image.podvmImage",
            "podvmImage applies only to azure, aws or gcp peer-pods pools",
            "remove it",
        )


def gcp_image_format(out: Collector, image: Image, pools: list[NodePool]) -> None:
    """GCP publishes the recipe's disk.raw.tar.gz (components.gcp.image), so the recipe must
    build the gcp-tar format."""
    gcp_peer_pods = any(p.provider == "gcp" and p.mode == "peer-pods" for p in pools)
    if not gcp_peer_pods or image.recipe is None or image.podvm_image is not None:
        return
    from images import recipe as recipes
    from images.errors import RecipeError

    try:
        formats = recipes.load(image.recipe).formats
    except RecipeError:
        return  # reported with the recipe's own error
    if "gcp-tar" not in formats:
        out.error(
            "coco:image.recipe",
            f"recipe {image.recipe!r} does not build gcp-tar, the disk GCP peer pods publish",
            'add "gcp-tar" to the recipe\'s [outputs] formats, or set podvmImage',
        )


def recipe_lock(out: Collector, image: Image) -> None:
    """A recipe entry that follows a registry tag builds only from the recipe's lock file
    (images/lock.py): without it, or with a lock the recipe no longer matches, `pulumi up`
    would stop at the image build. The same function the build runs decides."""
    if image.recipe is None:
        return
    from images import lock
    from images import recipe as recipes
    from images.errors import RecipeError

    try:
        spec = recipes.load(image.recipe)
    except RecipeError:
        return  # reported with the recipe's own error
    try:
        lock.locked(spec)
    except RecipeError as exc:
        out.warn(
            "coco:image.recipe",
            f"the build during `pulumi up` will stop: recipe {spec.name!r}: {exc}",
            exc.hint,
        )


def recipe_payload_pinned(out: Collector, recipe: str) -> None:
    """A valid recipe whose payload is not pinned by content today (an OCI pin without a digest,
    a Go group missing from the checkout) would stop the build during `pulumi up`: say so now,
    as a warning (the config itself is valid). Silent when every payload source is pinned."""
    from images import recipe as recipes
    from images.build import check_oci_pins
    from images.errors import RecipeError
    from images.payload import go_group_dir

    try:
        loaded = recipes.load(recipe)
        check_oci_pins(loaded)
        for item in loaded.go:
            go_group_dir(item.group)
    except RecipeError as exc:
        out.warn(
            "coco:image.recipe",
            f"the build during `pulumi up` will stop: {exc}",
            exc.hint or "pin the payload by content",
        )


def podvm_attestation(out: Collector, image: Image, pools: list[NodePool]) -> None:
    """Pod VMs built from a recipe that installs kata-static's attestation agent cannot present
    the evidence their pool's offering promises when the recipe's kernel lacks the TEE guest
    support (spec.versions KERNEL_TEE_GUEST_GAPS), when the recipe does not load the guest driver
    for that evidence (TEE_GUEST_MODULES), or when the agent has no attester for it
    (KATA_STATIC_ATTESTERS): say so per pool, as a warning. Only for recipes that install
    kata-static's attestation agent (the podvm recipe); silent for a podvmImage the user brings
    (we cannot know what it holds)."""
    if image.recipe is None or image.podvm_image is not None:
        return
    from images import pins
    from images import recipe as recipes
    from images.errors import RecipeError
    from spec import catalogue, versions

    try:
        loaded = recipes.load(image.recipe)
    except RecipeError:
        return  # reported with the recipe's own error
    kernel_gaps = versions.KERNEL_TEE_GUEST_GAPS.get(loaded.kernel_package, {})
    pinned_kernel = loaded.kernel_package == pins.KERNEL_PACKAGE
    loads = {m.replace("-", "_") for m in loaded.modules}
    kata_agent = any(
        r.pin == "KATA_CONFIDENTIAL_IMAGE"
        and any(dest.endswith("/attestation-agent") for _, dest in r.files)
        for r in loaded.release
    )
    if not kata_agent:
        return  # not a pod-VM recipe with kata-static's guest components (e.g. minimal)
    for i, pool in enumerate(pools):
        if pool.mode != "peer-pods" or pool.provider not in ("azure", "aws", "gcp"):
            continue
        offering = catalogue.find(pool.provider or "", pool.tee, pool.mode or "")
        evidence = offering.evidence if offering is not None else None
        if evidence is None:
            continue
        gaps: list[str] = []
        fixes: list[str] = []
        module = versions.TEE_GUEST_MODULES.get(evidence)
        if evidence in kernel_gaps:
            gaps.append(f"its kernel {loaded.kernel_package} has {kernel_gaps[evidence]}")
            fixes.append(f"use kernel.package = {pins.KERNEL_PACKAGE!r} in the recipe")
        elif pinned_kernel and module and module.replace("-", "_") not in loads:
            gaps.append(
                f"the recipe does not load the {module} kernel module, so the guest has no "
                f"{evidence} report device"
            )
            fixes.append(f"add {module!r} to kernel.modules in the recipe")
        if evidence not in versions.KATA_STATIC_ATTESTERS:
            attesters = ", ".join(versions.KATA_STATIC_ATTESTERS)
            gaps.append(
                f"kata-static's attestation-agent has no {evidence} attester (only {attesters})"
            )
            fix = (
                "a gap of coco-stack's podvm recipe, not of your stack (docs/images.md, \"What "
                'the podvm image cannot do yet"); until it closes, name an image with an '
                "attestation agent built for it in coco:image.podvmImage"
            )
            if pool.provider == "azure":
                fix += (
                    f", for example the CoCo project's {versions.AZURE_COMMUNITY_PODVM_IMAGE} "
                    f"(PCR reference values: {versions.AZURE_COMMUNITY_PODVM_MEASUREMENTS}; "
                    "docs/azure.md)"
                )
            fixes.append(fix)
        if gaps:
            out.warn(
                f"coco:nodePools[{i}]",
                f"pool {pool.name!r}: pod VMs built from recipe {loaded.name!r} cannot produce "
                f"attestation evidence yet: {'; '.join(gaps)}; the KBS will release nothing to "
                "them",
                "; ".join(fixes),
            )


# The unit our podvm recipe ships for the scratch space (images/recipes/podvm.toml,
# podvm-payload/etc/systemd/system/scratch-storage.service): a recipe without it ignores the
# daemon's marker, so turning the scratch space on would only grow the disk.
SCRATCH_UNIT = "/etc/systemd/system/scratch-storage.service"
SCRATCH_CLOUDS = ("aws", "azure", "gcp")
# The smallest boot disk a GCP pod VM can get. Compute Engine's Persistent Disks (pd-standard,
# pd-balanced, pd-ssd) are at least 10 GB (cloud.google.com/compute/docs/disks/persistent-disks,
# "persistent disk sizes start at 10 GB"; Hyperdisk Balanced at 4 GiB,
# cloud.google.com/compute/docs/disks/hyperdisks). cloud-api-adaptor v0.22.0 asks for
# max(image size, ROOT_VOLUME_SIZE) GB (src/cloud-providers/gcp/provider.go CreateInstance) and
# the stack sets ROOT_VOLUME_SIZE to the image's GiB plus scratchSpace.sizeGib, or sizeGib alone
# for a podvmImage: a sizeGib of 10 or more keeps every GCP pod VM's disk at the minimum.
GCP_MIN_SCRATCH_GIB = 10


def cloud_peer_pods(pools: list[NodePool]) -> list[str]:
    """The clouds (of SCRATCH_CLOUDS) whose peer-pods pools the stack has, sorted."""
    return sorted({p.provider or "" for p in pools if p.mode == "peer-pods"} & set(SCRATCH_CLOUDS))


def _recipe_has_scratch(recipe: str) -> bool | None:
    """Whether the recipe ships the scratch units; None when it cannot be read (reported with
    the recipe's own error)."""
    from images import recipe as recipes
    from images.errors import RecipeError

    try:
        loaded = recipes.load(recipe)
    except RecipeError:
        return None
    return any(f.dest == SCRATCH_UNIT for f in loaded.payload)


def scratch_space_gib(image: Image, pools: list[NodePool]) -> int | None:
    """GiB of encrypted scratch space the pod VMs get, None when it is off: on by default only
    when azure, aws or gcp pod VMs boot the recipe's image and the recipe ships the scratch
    units; explicit `enabled` wins (spec.rules refuses it where it cannot work)."""
    if not cloud_peer_pods(pools):
        return None
    scratch = image.scratch_space or ScratchSpace()
    enabled = scratch.enabled
    if enabled is None:
        enabled = (
            image.podvm_image is None
            and image.recipe is not None
            and bool(_recipe_has_scratch(image.recipe))
        )
    return scratch.size_gib if enabled else None


def scratch_space(out: Collector, image: Image, pools: list[NodePool]) -> None:
    """coco:image.scratchSpace applies to azure, aws and gcp peer pods (cloud-api-adaptor
    v0.22.0 sizes their pod VMs' boot disks with ROOT_VOLUME_SIZE), and `enabled: true` needs an
    image that acts on the daemon's marker: the recipe's must ship the scratch units."""
    scratch = image.scratch_space
    if scratch is None:
        return
    if not cloud_peer_pods(pools):
        out.error(
            "coco:image.scratchSpace",
            "scratchSpace applies only to azure, aws or gcp peer-pods pools, whose pod VMs boot "
            "coco-stack's podvm image or one named in podvmImage",
            "remove it",
        )
        return
    if (
        "gcp" in cloud_peer_pods(pools)
        and scratch.size_gib < GCP_MIN_SCRATCH_GIB
        and scratch_space_gib(image, pools) is not None
    ):
        out.error(
            "coco:image.scratchSpace.sizeGib",
            f"{scratch.size_gib} GiB can leave the gcp pod VMs' boot disk below GCP's "
            "persistent-disk minimum: the disk (ROOT_VOLUME_SIZE) is the image's GiB plus "
            "sizeGib (sizeGib alone with podvmImage), and Compute Engine refuses pd-standard, "
            f"pd-balanced and pd-ssd disks under {GCP_MIN_SCRATCH_GIB} GB",
            f"set sizeGib to at least {GCP_MIN_SCRATCH_GIB} (GCP's persistent-disk minimum), or "
            "remove it for the default 20",
        )
    if not scratch.enabled or image.podvm_image is not None or image.recipe is None:
        return
    if _recipe_has_scratch(image.recipe) is False:
        out.error(
            "coco:image.scratchSpace.enabled",
            f"recipe {image.recipe!r} does not ship the scratch-space units ({SCRATCH_UNIT}), "
            "so its pod VMs would ignore the daemon's scratch marker",
            "use the podvm recipe, add the scratch-storage units to this recipe, or set "
            "enabled: false",
        )
