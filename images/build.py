"""The image build, as one readable recipe (the mkosi build_image() habit):

    check tools -> mirror state -> rootfs (mmdebstrap, cached) -> kernel + initramfs (packages
    by mmdebstrap, both cached) -> payload -> erofs -> dm-verity -> UKI -> ESP + GPT disk ->
    output formats -> measurements.json

Every step takes the one Context whose properties are the workspace paths. Everything random is
derived from the recipe's content hash (UUIDs, salt, volume id), every timestamp is the recipe's
SOURCE_DATE_EPOCH, so two clean builds of one recipe against one mirror state are bit-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import cache, disk, files, initrd, lock, oci, payload, pins, report, rootfs, uki, verity
from .errors import InputError, RecipeError, ToolMissing
from .files import OutputKind
from .recipe import Recipe
from .run import BUILD_TOOLS, Progress, check_tools, configure, run

OUTPUT_FILES = report.OUTPUT_FILES


@dataclass
class Context:
    recipe: Recipe
    out: Path
    seed: str
    progress: Progress
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        return self.out / ".work"

    @property
    def root(self) -> Path:
        return self.work / "root"

    @property
    def boot_tree(self) -> Path:
        return self.work / "boot-tree"

    @property
    def erofs(self) -> Path:
        return self.work / "root.erofs"

    @property
    def verity(self) -> Path:
        return self.work / "root.verity"

    @property
    def kernel(self) -> Path:
        return self.work / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.work / "initrd.img"

    @property
    def esp(self) -> Path:
        return self.work / "esp.img"

    @property
    def uki(self) -> Path:
        return self.out / "uki.efi"

    @property
    def raw(self) -> Path:
        return self.out / "disk.raw"

    def derive(self, label: str) -> bytes:
        return hashlib.sha256(f"{self.seed}:{label}".encode()).digest()

    def derive_uuid(self, label: str) -> uuid.UUID:
        return uuid.UUID(bytes=self.derive(label)[:16], version=4)


@dataclass(frozen=True)
class BuildResult:
    out: Path
    measurements: dict[str, Any]
    timings: dict[str, float]
    cache_hits: dict[str, bool]


STEPS = 10


# What `coco image build --out DIR` writes (images/files.py rules: DIR is new, empty or an
# earlier build, never reached through a link; the build runs in a fresh folder beside DIR and
# replaces it when it succeeded). Builds from before the marker are known by measurements.json.
IMAGE_OUTPUT = OutputKind(
    command="coco image build",
    marker=".coco-image",
    entries=frozenset({*OUTPUT_FILES.values(), "uki.efi", "measurements.json", ".work"}),
    legacy="measurements.json",
)


def _refused(message: str, hint: str) -> InputError:
    return InputError(message, hint=hint)


def check_out(out: Path) -> Path:
    """Refuse an unsafe --out before anything is built (build_image checks again)."""
    return files.check_target(out, IMAGE_OUTPUT, _refused)


def stack_out_dir(base: Path, stack: str) -> Path:
    """`base`/build/images/<stack>, where a stack's guest image is built: never a folder
    outside build/images/, whatever `stack` holds (the spec refuses such names first; this is
    the image side's own guard)."""
    images = base / "build" / "images"
    if (
        not stack
        or stack in (".", "..")
        or any(c in stack for c in "/\\")
        or not stack.isprintable()
        or stack != stack.strip()
    ):
        raise InputError(
            f"stack name {stack!r} cannot name a folder under {images}",
            hint="name the stack with letters, digits, '-', '_' and '.' (not '.' or '..')",
        )
    out = images / stack
    if out.parent != images or not out.resolve().is_relative_to(images.resolve()):
        raise InputError(f"stack {stack!r}: {out} is not inside {images}")
    return out


def build_image(
    recipe: Recipe, out: Path, *, debug: bool = False, quiet: bool = False
) -> BuildResult:
    configure(debug=debug, source_date_epoch=recipe.source_date_epoch)
    # tags the recipe follows build what its lock file says, or the build stops here, before
    # the output folder is touched; the content hash (the seed) is the recipe's own, which
    # covers the lock file
    seed, recipe = recipe.content_hash(), lock.locked(recipe)
    with files.replace_dir(out, IMAGE_OUTPUT, _refused) as staging:
        result = _build(recipe, staging, seed, quiet=quiet)
    return BuildResult(out, result.measurements, result.timings, result.cache_hits)


def _build(recipe: Recipe, out: Path, seed: str, *, quiet: bool) -> BuildResult:
    ctx = Context(recipe, out, seed, Progress(STEPS, quiet=quiet))
    ctx.work.mkdir()
    check_build_tools(ctx)
    install_rootfs(ctx)
    install_boot_tree(ctx)
    normalize_host_files(ctx)
    install_payload(ctx)
    make_root_filesystem(ctx)
    make_uki(ctx)
    make_disk(ctx)
    make_outputs(ctx)
    measurements = make_measurements(ctx)
    shutil.rmtree(ctx.work)
    return BuildResult(out, measurements, ctx.progress.timings, ctx.facts["cache_hits"])


def check_build_tools(ctx: Context) -> None:
    with ctx.progress.step("check host tools and mirror"):
        if os.geteuid() != 0:
            # mmdebstrap's root file system holds device nodes and root-owned files
            raise ToolMissing([("root", "(run the build as root, e.g. with sudo)")])
        check_tools(BUILD_TOOLS, files=(pins.EFI_STUB, ctx.recipe.snp_firmware))
        check_oci_pins(ctx.recipe)
        check_payload_sources(ctx.recipe)
        ctx.facts["mirrors"] = rootfs.mirror_states(ctx.recipe)
        ctx.facts["cache_hits"] = {}


def check_oci_pins(recipe: Recipe) -> None:
    """An OCI payload named by a pin whose digest is not resolved yet stops the build here
    (entries that follow a tag are images/lock.py's)."""
    for i, item in enumerate(recipe.oci):
        if item.pin and not item.digest:
            raise RecipeError(
                f"payload.oci[{i}].pin: {item.pin} ({item.image}) has no digest pinned in "
                "spec/versions.py",
                hint=f"with registry access run `coco image resolve {item.image}`, check the "
                "digest against the upstream build attestation, and set digest= on the pin",
            )


def check_payload_sources(recipe: Recipe) -> None:
    """The tools the pinned payload sources need, before anything long starts: debugfs for
    release images, Go and the group directory for Go payloads."""
    if recipe.release:
        check_tools(("debugfs",))
    for item in recipe.go:
        payload.go_group_dir(item.group)
    if recipe.go:
        payload.check_go()


def install_rootfs(ctx: Context) -> None:
    with ctx.progress.step("root file system (mmdebstrap)"):
        tarball, hit = rootfs.cached_stage(
            f"rootfs-{ctx.recipe.name}",
            rootfs.rootfs_stage(ctx.recipe),
            ctx.facts["mirrors"],
            ctx.recipe.source_date_epoch,
        )
        ctx.facts["cache_hits"]["rootfs"] = hit
        ctx.facts["rootfs_tar_sha256"] = cache.sha256_file(tarball)
        rootfs.extract(tarball, ctx.root)
        ctx.facts["packages"] = rootfs.installed_packages(ctx.root)


def install_boot_tree(ctx: Context) -> None:
    """Kernel and initramfs packages (mmdebstrap extract, cached), then the kernel and the
    initramfs built from them, cached under a key of the package tarball, the module list and
    the builder's initramfs code: a warm rebuild unpacks nothing here."""
    with ctx.progress.step("kernel and initramfs (mmdebstrap extract)"):
        tarball, hit = rootfs.cached_stage(
            "boot-tree",
            rootfs.boot_tree_stage(ctx.recipe),
            ctx.facts["mirrors"],
            ctx.recipe.source_date_epoch,
        )
        ctx.facts["cache_hits"]["boot-tree"] = hit
        material = [tarball.name, *ctx.recipe.modules, str(ctx.recipe.source_date_epoch)]
        digest = hashlib.sha256("\n".join(material).encode())
        for code in (initrd.INIT_SCRIPT, Path(initrd.__file__)):
            digest.update(code.read_bytes())
        products = cache.cache_dir() / f"initramfs-{digest.hexdigest()}"
        ctx.facts["cache_hits"]["initramfs"] = products.exists()
        if not products.exists():
            make_initrd(ctx, tarball, products)
        ctx.facts["kernel_version"] = (products / "kernel_version").read_text().strip()
        shutil.copyfile(products / "vmlinuz", ctx.kernel)
        shutil.copyfile(products / "initrd.img", ctx.initrd)


def make_initrd(ctx: Context, tarball: Path, products: Path) -> None:
    rootfs.extract(tarball, ctx.boot_tree)
    kver = rootfs.kernel_version(ctx.boot_tree)
    run(["depmod", "-b", ctx.boot_tree, kver])
    modules_dep = (ctx.boot_tree / "lib/modules" / kver / "modules.dep").read_text()
    partial = products.with_name(f".{products.name}.{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir()
    builtin = ctx.boot_tree / "lib/modules" / kver / "modules.builtin"
    (partial / "initrd.img").write_bytes(
        initrd.build(
            ctx.boot_tree,
            kver,
            modules_dep,
            list(ctx.recipe.modules),
            ctx.recipe.source_date_epoch,
            builtin.read_text() if builtin.exists() else "",
        )
    )
    shutil.copyfile(ctx.boot_tree / "boot" / f"vmlinuz-{kver}", partial / "vmlinuz")
    (partial / "kernel_version").write_text(kver + "\n")
    try:
        partial.rename(products)  # atomic: never a half-written cache entry
    except OSError:
        if not products.exists():
            raise
        shutil.rmtree(partial)  # a concurrent build stored the same entry first
    shutil.rmtree(ctx.boot_tree)


def normalize_host_files(ctx: Context) -> None:
    """mmdebstrap copies the build host's /etc/hostname and /etc/resolv.conf into the root;
    they would make the image (and its root hash and PCR 11) differ from host to host."""
    with ctx.progress.step("normalize host files"):
        rootfs.normalize_host_files(ctx.root)


def install_payload(ctx: Context) -> None:
    """OCI layers, release images and Go builds first, then the recipe's files (a local file may
    replace an extracted one)."""
    with ctx.progress.step("payload"):
        layers, placed = oci.install(ctx.recipe.oci, ctx.root, ctx.recipe.source_date_epoch)
        placed += payload.install_release(ctx.recipe.release, ctx.root)
        placed += payload.install_go(ctx.recipe.go, ctx.root)
        placed += rootfs.install_payload(ctx.recipe, ctx.root)
        ctx.facts["oci"] = layers
        ctx.facts["payload"] = sorted(placed, key=lambda p: (p["dest"], p["source"]))


def make_root_filesystem(ctx: Context) -> None:
    with ctx.progress.step("erofs root and dm-verity"):
        verity.make_erofs(
            ctx.root,
            ctx.erofs,
            epoch=ctx.recipe.source_date_epoch,
            uuid=str(ctx.derive_uuid("erofs")),
        )
        ctx.facts["verity"] = verity.make_verity(
            ctx.erofs,
            ctx.verity,
            salt=ctx.derive("verity-salt").hex(),
            uuid=str(ctx.derive_uuid("verity")),
            workdir=ctx.work,
        )


def kernel_cmdline(recipe: Recipe, root_hash: str) -> str:
    return f"{recipe.cmdline} roothash={root_hash} coco.init={recipe.init}"


def make_uki(ctx: Context) -> None:
    with ctx.progress.step("unified kernel image"):
        cmdline = kernel_cmdline(ctx.recipe, ctx.facts["verity"].root_hash)
        osrel = initrd.resolve_in_tree(ctx.root, "etc/os-release").read_bytes()
        uki.build(
            ctx.kernel, ctx.initrd, cmdline, osrel, ctx.work, ctx.uki, ctx.recipe.source_date_epoch
        )
        ctx.facts["cmdline"] = cmdline


def make_disk(ctx: Context) -> None:
    with ctx.progress.step("ESP and GPT disk"):
        epoch = ctx.recipe.source_date_epoch
        disk.make_esp(
            ctx.uki,
            ctx.esp,
            size_mib=ctx.recipe.esp_mib,
            volume_id=ctx.derive("esp-volume-id")[:4].hex(),
            epoch=epoch,
        )
        root_hash = bytes.fromhex(ctx.facts["verity"].root_hash)
        layout = disk.assemble(
            [
                disk.Partition("esp", disk.ESP_TYPE, str(ctx.derive_uuid("esp")), ctx.esp),
                disk.Partition(
                    "coco-root",
                    disk.ROOT_X86_64_TYPE,
                    str(uuid.UUID(bytes=root_hash[:16])),
                    ctx.erofs,
                ),
                disk.Partition(
                    "coco-verity",
                    disk.ROOT_VERITY_X86_64_TYPE,
                    str(uuid.UUID(bytes=root_hash[-16:])),
                    ctx.verity,
                ),
            ],
            ctx.raw,
            disk_uuid=str(ctx.derive_uuid("disk")),
        )
        ctx.facts["layout"] = layout


def make_outputs(ctx: Context) -> None:
    with ctx.progress.step("output formats"):
        epoch = ctx.recipe.source_date_epoch
        formats = ctx.recipe.formats
        if "qcow2" in formats:
            disk.to_qcow2(ctx.raw, ctx.out / OUTPUT_FILES["qcow2"])
        if "azure-vhd" in formats:
            disk.to_azure_vhd(
                ctx.raw,
                ctx.out / OUTPUT_FILES["azure-vhd"],
                epoch=epoch,
                unique_id=ctx.derive_uuid("vhd"),
            )
        if "gcp-tar" in formats:
            # GCP imports whole-GiB disks only: the tar holds raw grown to whole GiB
            gcp_raw = ctx.work / "gcp-disk.raw"
            disk.whole_gib_disk(
                ctx.raw, ctx.facts["layout"], gcp_raw, disk_uuid=str(ctx.derive_uuid("disk"))
            )
            disk.to_gcp_tar(gcp_raw, ctx.out / OUTPUT_FILES["gcp-tar"], epoch=epoch)


def make_measurements(ctx: Context) -> dict[str, Any]:
    with ctx.progress.step("measurements"):
        data = report.measurements(ctx.recipe, ctx.seed, ctx.facts, ctx.out, ctx.kernel)
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        (ctx.out / "measurements.json").write_text(text)
        return data
