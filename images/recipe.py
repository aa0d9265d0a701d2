"""Recipes: small declarative TOML files (images/recipes/*.toml) parsed into frozen dataclasses.

A recipe names the base distribution (suite, variant, packages), the payload (files copied into
the root file system, local or fetched by URL and verified by sha256, and archive members of OCI
image layers pinned by manifest digest), the kernel and its command
line, the target formats, and the parameters measurements are computed for. Every error names the
recipe key and what to write instead.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import pins
from .errors import RecipeError

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
FORMATS = ("raw", "qcow2", "azure-vhd", "gcp-tar")
VARIANTS = ("essential", "apt", "minbase", "required", "important", "standard")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PayloadFile:
    """One file placed into the root file system: `source` is a path relative to the recipe's
    directory or an https:// URL (then `sha256` is required and checked at build time)."""

    source: str
    dest: str
    mode: int = 0o644
    sha256: str = ""

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("https://", "http://"))


@dataclass(frozen=True)
class OciPayload:
    """Members of one layer of an OCI image or artifact, pinned by manifest digest (images/oci.py).

    `image` is registry/repository:tag@sha256:..., or registry/repository:tag alone (`digest`
    empty: the build takes the digest from the recipe's lock file, images/lock.py); `pin` names
    the spec/versions.py entry it came from (then `digest` may still be empty: the build
    refuses it). `files` maps archive
    members (a file, a directory for its subtree, or "." for all) to absolute destinations."""

    image: str
    digest: str
    files: tuple[tuple[str, str], ...]
    layer: str = ""
    platform: str = "linux/amd64"
    pin: str = ""


@dataclass(frozen=True)
class ReleasePayload:
    """Files read out of the ext4 file system of a disk image inside a pinned release archive
    ([[payload.release]], images/payload.py). `pin` names the images.pins.RELEASE_PINS entry
    (archive URL and sha256, member, offset); `files` maps absolute paths inside that file
    system to absolute destinations."""

    pin: str
    image: pins.GuestImagePin
    files: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class GoPayload:
    """Binaries built with the Go toolchain from a module group tools/go/GROUP (go.sum pins every
    module by hash; tools/build.py builds it) ([[payload.go]], images/payload.py). `files` maps
    binary names of the group to absolute destinations."""

    group: str
    files: tuple[tuple[str, str], ...]


BOOT_READY = ("marker", "tcp")
USER_DATA = ("", "peer-pod")


@dataclass(frozen=True)
class BootCheck:
    """What "booted" means for `coco image boot` ([boot], images/boot.py check): `marker`, the
    root's init printed the image marker (and powered off); `tcp`, the dm-verity root mounted
    and guest TCP `port` answers through a QEMU user-net forward (a TLS handshake when `tls`).
    `user_data` "peer-pod" attaches a config disk with the user data cloud-api-adaptor would
    send (images/userdata.py). Not a build input: the image's bytes do not depend on it."""

    ready: str = "marker"
    port: int = 0
    tls: bool = False
    user_data: str = ""
    timeout: float = 300.0

    def describe(self) -> str:
        if self.ready == "marker":
            return "the image marker on the serial console"
        answer = "a TLS handshake" if self.tls else "a TCP connection"
        return f"the verity root mounted and {answer} on guest port {self.port}"


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    description: str = ""
    suite: str = pins.DEBIAN_SUITE
    mirror: str = pins.DEBIAN_MIRROR
    # `<suite>-security` on this mirror is read with the main suite ("" for none): security
    # updates for the root, and the pinned kernel (spec/versions.py KERNEL_PACKAGE)
    security_mirror: str = pins.DEBIAN_SECURITY_MIRROR
    variant: str = "essential"
    packages: tuple[str, ...] = ()
    path_exclude: tuple[str, ...] = ()
    kernel_package: str = pins.KERNEL_PACKAGE
    modules: tuple[str, ...] = ("virtio_pci", "virtio_blk", "dm_verity", "erofs")
    cmdline: str = "console=ttyS0 panic=-1"
    init: str = "/sbin/init"
    payload: tuple[PayloadFile, ...] = ()
    oci: tuple[OciPayload, ...] = ()
    release: tuple[ReleasePayload, ...] = ()
    go: tuple[GoPayload, ...] = ()
    formats: tuple[str, ...] = FORMATS
    esp_mib: int = 64
    source_date_epoch: int = pins.SOURCE_DATE_EPOCH
    snp_firmware: str = pins.OVMF_SNP
    snp_vcpus: tuple[int, ...] = (1,)
    snp_vcpu_type: str = "EPYC-v4"
    snp_vmm_type: str = "QEMU"
    snp_guest_features: str = "0x1"
    tdx_firmware: str = ""
    tdx_page_order: str = "single-pass"  # images.tdx.PAGE_ORDERS
    boot: BootCheck = BootCheck()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def sources(self) -> tuple[tuple[str, str], ...]:
        """(mirror, suite) of every apt source, main suite first."""
        main = ((self.mirror, self.suite),)
        if not self.security_mirror:
            return main
        return (*main, (self.security_mirror, f"{self.suite}-security"))

    @property
    def lock_path(self) -> Path:
        """`<stem>.lock.json` next to the recipe: the digests of the tags it follows
        (images/lock.py)."""
        return self.path.with_name(f"{self.path.stem}.lock.json")

    def canonical(self) -> dict[str, Any]:
        """Every build input of the recipe as plain data (sorted, without the file path)."""
        data = asdict(self)
        data.pop("path")
        data.pop("extra")
        data.pop("boot")  # how `coco image boot` checks the image, not what is built
        data["payload"] = [asdict(p) for p in self.payload]
        data["oci"] = [asdict(o) for o in self.oci]
        data["release"] = [asdict(r) for r in self.release]
        data["go"] = [asdict(g) for g in self.go]
        return data

    def payload_pins(self) -> dict[str, str]:
        """Every payload source from outside the repository -> the content hash it is pinned by
        (`sha256:<hex>`), sorted: the archive's sha256 for [[payload.release]], the group's
        go.sum for [[payload.go]], the manifest digest (from the recipe or its lock file) for
        [[payload.oci]], the pinned sha256 of URL [[payload]] files (files in the recipe folder
        are the repository's own). An OCI entry that follows a tag and has no lock entry maps
        to "" (not pinned: the build would stop)."""
        from .payload import go_group_dir

        pinned: dict[str, str] = {}
        for item in self.payload:
            if item.is_url:
                pinned[f"url:{item.source}"] = f"sha256:{item.sha256}"
        for rel in self.release:
            pinned[f"release:{rel.pin}"] = f"sha256:{rel.image.artifact.sha256}"
        for go in self.go:
            go_sum = (go_group_dir(go.group) / "go.sum").read_bytes()
            pinned[f"go:{go.group}"] = f"sha256:{hashlib.sha256(go_sum).hexdigest()}"
        if self.oci:
            from . import lock
            from .errors import RecipeError

            try:
                oci = lock.locked(self).oci
            except RecipeError:
                oci = self.oci
            for entry in oci:
                name = entry.pin or entry.image.split("@", 1)[0]
                pinned[f"oci:{name}"] = entry.digest or (
                    entry.image.split("@", 1)[1] if "@" in entry.image else ""
                )
        return dict(sorted(pinned.items()))

    def content_hash(self) -> str:
        """sha256 over the recipe's inputs, local payload bytes and the builder's own guest-side
        code (the initramfs script): what the GuestImage component is keyed on."""
        digest = hashlib.sha256()
        digest.update(json.dumps(self.canonical(), sort_keys=True).encode())
        for item in self.payload:  # sorted by dest
            if item.is_url:
                digest.update(item.sha256.encode())
            else:
                where = f"payload file {item.dest}: source"
                source = local_source(self.directory, item.source, where)
                digest.update(hashlib.sha256(source.read_bytes()).digest())
        # the builder itself: its code, the initramfs script and the pinned inputs, so a
        # GuestImage rebuilds when the builder changes, not only when the recipe does
        here = Path(__file__).resolve().parent
        for source in sorted([*here.glob("*.py"), here / "initrd" / "init"]):
            digest.update(source.name.encode())
            digest.update(hashlib.sha256(source.read_bytes()).digest())
        # a Go payload is pinned by its group's go.mod, go.sum, manifest and glue
        from .payload import go_group_files

        for go in self.go:
            for source in go_group_files(go.group):
                digest.update(f"go/{go.group}/{source.name}".encode())
                digest.update(hashlib.sha256(source.read_bytes()).digest())
        pinned = {n: getattr(pins, n) for n in sorted(pins.__all__)}
        digest.update(json.dumps(pinned, sort_keys=True).encode())
        # entries that follow a tag build what the lock says: a re-lock is a new recipe
        if any(not o.pin and not o.digest for o in self.oci) and self.lock_path.is_file():
            digest.update(b"lock:" + hashlib.sha256(self.lock_path.read_bytes()).digest())
        return digest.hexdigest()


_SUITE = re.compile(r"^[a-z][a-z0-9-]*$")
_MIRROR = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~/-]*)?$")
_PATH_EXCLUDE = re.compile(r"^/[A-Za-z0-9._*?/+-]+$")
_OCI_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")
_OCI_TAG = re.compile(r"/[^/]+:[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # registry/repo:tag, no digest
_OCI_IMAGE = re.compile(
    r"^[A-Za-z0-9.-]+(:\d+)?/[a-z0-9._/-]+(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?(@sha256:[0-9a-f]{64})?$"
)


def _get(table: dict[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is int and isinstance(value, bool):
        raise RecipeError(f"{where}{key}: expected an integer, got {value!r}")
    if not isinstance(value, kind):
        raise RecipeError(
            f"{where}{key}: expected {kind.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def _strings(
    table: dict[str, Any], key: str, where: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    value = _get(table, key, list, where, None)
    if value is None:
        return default
    if not all(isinstance(v, str) for v in value):
        raise RecipeError(f"{where}{key}: expected a list of strings, got {value!r}")
    return tuple(value)


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RecipeError(
            f"{where}{unknown[0]}: unknown key", hint=f"allowed here: {', '.join(sorted(allowed))}"
        )


def resolve(name_or_path: str) -> Path:
    """A recipe name from images/recipes/ or a path to a .toml file."""
    if not name_or_path or not name_or_path.isprintable():
        raise RecipeError(f"recipe {name_or_path!r} is not a recipe name or a file path",
                          hint="name a recipe in images/recipes/ or a .toml file")
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path:
        if not candidate.is_file():
            raise RecipeError(f"recipe file {name_or_path} does not exist")
        return candidate.resolve()
    path = RECIPES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.toml")))
        raise RecipeError(f"no recipe named {name_or_path!r}", hint=f"known recipes: {known}")
    return path


MAX_RECIPE_BYTES = 1 << 20  # recipes are a few KiB; anything this large is not one


def load(name_or_path: str) -> Recipe:
    path = resolve(name_or_path)
    return parse(read_toml(path), path)


def read_toml(path: Path) -> dict[str, Any]:
    """The recipe file as TOML data, or a RecipeError naming the line (and column) at fault.
    Nothing of the file's content is quoted back."""
    hint = "a recipe is a UTF-8 TOML file; see images/recipes/minimal.toml"
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_RECIPE_BYTES + 1)
    except OSError as exc:
        raise RecipeError(f"recipe file {path}: cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise RecipeError(f"recipe file {path}: larger than {MAX_RECIPE_BYTES >> 10} KiB, not a "
                          "recipe", hint=hint)
    if b"\0" in raw:
        line = raw.count(b"\n", 0, raw.index(b"\0")) + 1
        raise RecipeError(f"recipe file {path}: line {line}: a NUL byte; this is a binary file, "
                          "not a TOML recipe", hint=hint)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise RecipeError(f"recipe file {path}: line {line}, column {column}: not UTF-8 text",
                          hint=hint) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's messages name what was expected and "(at line L, column C)", never content
        raise RecipeError(f"recipe file {path}: not valid TOML: {exc}", hint=hint) from None


def local_source(directory: Path, source: str, where: str) -> Path:
    """The payload file `source` names, relative to the recipe's folder `directory`, resolved
    (symbolic links included) and confined to that folder: a recipe never copies a file of the
    build host (`../../etc/shadow`, `/root/.ssh/id_rsa`, a link pointing out) into an image."""
    hint = ("keep payload files in the recipe's folder (e.g. NAME-payload/) and name them "
            "relative to the recipe")
    if not source or "\0" in source or source.startswith("/") or "\\" in source:
        raise RecipeError(f"{where}: {source!r} is not a relative path inside the recipe's "
                          "folder", hint=hint)
    base = directory.resolve()
    try:
        target = (base / source).resolve(strict=True)
    except FileNotFoundError:
        raise RecipeError(f"{where}: {source} not found in the recipe's folder {base}") from None
    except (OSError, RuntimeError) as exc:
        raise RecipeError(f"{where}: {source} cannot be resolved ({exc})", hint=hint) from None
    if not target.is_relative_to(base):
        raise RecipeError(f"{where}: {source} is outside the recipe's folder {base}"
                          + (" (through a symbolic link)" if ".." not in Path(source).parts
                             else ""), hint=hint)
    if not target.is_file():
        raise RecipeError(f"{where}: {source} is not a regular file", hint=hint)
    return target


def parse(data: dict[str, Any], path: Path) -> Recipe:
    _check_keys(
        data,
        {"name", "description", "distribution", "kernel", "payload", "outputs", "measure", "boot"},
        "",
    )
    name = _get(data, "name", str, "", path.stem)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise RecipeError(f"name: {name!r} is not a lowercase name", hint="use e.g. podvm-snp")
    dist = _get(data, "distribution", dict, "", {})
    _check_keys(
        dist,
        {"suite", "mirror", "security", "security_mirror", "variant", "packages", "path_exclude"},
        "distribution.",
    )
    kernel = _get(data, "kernel", dict, "", {})
    _check_keys(kernel, {"package", "modules", "cmdline"}, "kernel.")
    payload = _get(data, "payload", dict, "", {})
    _check_keys(payload, {"init", "files", "oci", "release", "go"}, "payload.")
    outputs = _get(data, "outputs", dict, "", {})
    _check_keys(outputs, {"formats", "esp_mib", "source_date_epoch"}, "outputs.")
    measure = _get(data, "measure", dict, "", {})
    _check_keys(
        measure,
        {
            "snp_firmware",
            "snp_vcpus",
            "snp_vcpu_type",
            "snp_vmm_type",
            "snp_guest_features",
            "tdx_firmware",
            "tdx_page_order",
        },
        "measure.",
    )
    tdx_page_order = _get(measure, "tdx_page_order", str, "measure.", "single-pass")
    if tdx_page_order not in ("single-pass", "two-pass"):  # images.tdx.PAGE_ORDERS
        raise RecipeError(
            f"measure.tdx_page_order: {tdx_page_order!r} is not a page order",
            hint="single-pass (current KVM, the default) or two-pass (older TDX stacks)",
        )

    variant = _get(dist, "variant", str, "distribution.", "essential")
    if variant not in VARIANTS:
        raise RecipeError(f"distribution.variant: {variant!r} is not one of {', '.join(VARIANTS)}")
    packages = _strings(dist, "packages", "distribution.", ())
    for package in packages:
        if not _PACKAGE.match(package):
            raise RecipeError(f"distribution.packages: {package!r} is not a Debian package name")
    formats = _strings(outputs, "formats", "outputs.", FORMATS)
    for fmt in formats:
        if fmt not in FORMATS:
            raise RecipeError(f"outputs.formats: {fmt!r} is not one of {', '.join(FORMATS)}")
    files = []
    for i, item in enumerate(_get(payload, "files", list, "payload.", [])):
        where = f"payload.files[{i}]."
        if not isinstance(item, dict):
            raise RecipeError(f"payload.files[{i}]: expected a table")
        _check_keys(item, {"source", "dest", "mode", "sha256"}, where)
        entry = PayloadFile(
            source=_get(item, "source", str, where, ""),
            dest=_get(item, "dest", str, where, ""),
            mode=_get(item, "mode", int, where, 0o644),
            sha256=_get(item, "sha256", str, where, ""),
        )
        if not entry.source:
            raise RecipeError(f"{where}source: a payload file needs a source")
        dest_parts = entry.dest.split("/")
        if not entry.dest.startswith("/") or ".." in dest_parts or entry.dest.endswith("/"):
            raise RecipeError(f"{where}dest: {entry.dest!r} is not an absolute file path in the "
                              "image without '..'", hint="for example /usr/local/bin/tool")
        if entry.is_url and not _SHA256.match(entry.sha256):
            raise RecipeError(
                f"{where}sha256: a payload fetched by URL needs its sha256 pinned",
                hint="download the artifact once, check it against the release's checksums, "
                "and write its sha256 (64 lowercase hex digits) into the recipe",
            )
        if not entry.is_url:
            local_source(path.parent, entry.source, f"{where}source")
        files.append(entry)
    oci = [_oci(item, i) for i, item in enumerate(_get(payload, "oci", list, "payload.", []))]
    released = [
        _release(item, i) for i, item in enumerate(_get(payload, "release", list, "payload.", []))
    ]
    go = [_go(item, i) for i, item in enumerate(_get(payload, "go", list, "payload.", []))]
    vcpus = _get(measure, "snp_vcpus", list, "measure.", [1])
    if not vcpus or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in vcpus
    ):
        raise RecipeError(f"measure.snp_vcpus: expected a list of positive integers, got {vcpus!r}")
    # values that reach mmdebstrap's apt source line and dpkg options: refuse anything that
    # could add apt options ("[trusted=yes] ..." disables signature checks) or inject lines
    suite = _get(dist, "suite", str, "distribution.", pins.DEBIAN_SUITE)
    if not _SUITE.match(suite):
        raise RecipeError(f"distribution.suite: {suite!r} is not a Debian suite name",
                          hint="for example 'bookworm'")
    mirror = _get(dist, "mirror", str, "distribution.", pins.DEBIAN_MIRROR).rstrip("/")
    if not _MIRROR.match(mirror):
        raise RecipeError(f"distribution.mirror: {mirror!r} is not a plain http(s) URL",
                          hint="for example 'http://deb.debian.org/debian'; apt options are "
                          "not allowed (signatures are always checked)")
    security = _get(dist, "security", bool, "distribution.", True)
    security_mirror = _get(
        dist, "security_mirror", str, "distribution.", pins.DEBIAN_SECURITY_MIRROR
    ).rstrip("/")
    if not _MIRROR.match(security_mirror):
        raise RecipeError(
            f"distribution.security_mirror: {security_mirror!r} is not a plain http(s) URL",
            hint="for example 'http://deb.debian.org/debian-security'; apt options are not "
            "allowed (signatures are always checked)",
        )
    if not security and "security_mirror" in dist:
        raise RecipeError(
            "distribution.security_mirror: set, but distribution.security is false",
            hint="remove one of them: the security suite is read only when security is true",
        )
    for pattern in _strings(dist, "path_exclude", "distribution.", ()):
        if not _PATH_EXCLUDE.match(pattern):
            raise RecipeError(f"distribution.path_exclude: {pattern!r} is not an absolute path "
                              "pattern", hint="for example '/usr/share/doc/*'")
    esp_mib = _get(outputs, "esp_mib", int, "outputs.", 64)
    if not 32 <= esp_mib <= 1024:
        raise RecipeError(f"outputs.esp_mib: {esp_mib} is outside 32..1024")
    return Recipe(
        name=name,
        path=path,
        description=_get(data, "description", str, "", ""),
        suite=suite,
        mirror=mirror,
        security_mirror=security_mirror if security else "",
        variant=variant,
        packages=tuple(sorted(set(packages))),
        path_exclude=tuple(sorted(set(_strings(dist, "path_exclude", "distribution.", ())))),
        kernel_package=_get(kernel, "package", str, "kernel.", pins.KERNEL_PACKAGE),
        modules=tuple(sorted(set(_strings(kernel, "modules", "kernel.", Recipe.modules)))),
        cmdline=" ".join(_get(kernel, "cmdline", str, "kernel.", Recipe.cmdline).split()),
        init=_get(payload, "init", str, "payload.", "/sbin/init"),
        payload=tuple(sorted(files, key=lambda p: p.dest)),
        oci=tuple(oci),
        release=tuple(released),
        go=tuple(go),
        formats=tuple(f for f in FORMATS if f in formats),
        esp_mib=esp_mib,
        source_date_epoch=_get(
            outputs, "source_date_epoch", int, "outputs.", pins.SOURCE_DATE_EPOCH
        ),
        snp_firmware=_get(measure, "snp_firmware", str, "measure.", pins.OVMF_SNP),
        snp_vcpus=tuple(sorted(set(vcpus))),
        snp_vcpu_type=_get(measure, "snp_vcpu_type", str, "measure.", "EPYC-v4"),
        snp_vmm_type=_get(measure, "snp_vmm_type", str, "measure.", "QEMU"),
        snp_guest_features=_get(measure, "snp_guest_features", str, "measure.", "0x1"),
        tdx_firmware=_get(measure, "tdx_firmware", str, "measure.", ""),
        tdx_page_order=tdx_page_order,
        boot=_boot(_get(data, "boot", dict, "", {})),
    )


def _boot(table: dict[str, Any]) -> BootCheck:
    """[boot]: ready = "marker" | { tcp = PORT, tls = BOOL }; user_data; timeout (seconds)."""
    _check_keys(table, {"ready", "user_data", "timeout"}, "boot.")
    hint = 'ready = "marker", or ready = { tcp = 15150, tls = true } for a guest port'
    ready = table.get("ready", "marker")
    port: Any = 0
    tls = False
    if isinstance(ready, dict):
        _check_keys(ready, {"tcp", "tls"}, "boot.ready.")
        port = ready.get("tcp")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise RecipeError(f"boot.ready.tcp: {port!r} is not a TCP port (1..65535)", hint=hint)
        tls = _get(ready, "tls", bool, "boot.ready.", False)
        ready = "tcp"
    elif ready != "marker":
        raise RecipeError(f"boot.ready: {ready!r} is not a readiness check", hint=hint)
    user_data = _get(table, "user_data", str, "boot.", "")
    if user_data not in USER_DATA:
        raise RecipeError(
            f"boot.user_data: {user_data!r} is not a kind of user data",
            hint='"peer-pod" (the user data cloud-api-adaptor sends a pod VM), or leave it out',
        )
    if user_data and ready != "tcp":
        raise RecipeError(
            "boot.user_data: only a tcp readiness check waits for what the user data starts",
            hint=hint,
        )
    timeout = table.get("timeout", 300)
    number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
    if not number or not 10 <= timeout <= 7200:
        raise RecipeError(
            f"boot.timeout: {timeout!r} is not a number of seconds in 10..7200",
            hint="under TCG the podvm needs about 170 s to a listening forwarder: 900 is generous",
        )
    return BootCheck(ready, port, tls, user_data, float(timeout))


def _oci(item: Any, i: int) -> OciPayload:
    """One [[payload.oci]] table: exactly one of `image` (pinned by digest) or `pin`."""
    where = f"payload.oci[{i}]."
    if not isinstance(item, dict):
        raise RecipeError(f"payload.oci[{i}]: expected a table")
    _check_keys(item, {"image", "pin", "layer", "files", "platform"}, where)
    image, pin = _get(item, "image", str, where, ""), _get(item, "pin", str, where, "")
    if bool(image) == bool(pin):
        raise RecipeError(f"{where}image: give either image (a reference pinned by digest) or "
                          "pin (a name from spec/versions.py), not both or neither",
                          hint=f"pins: {', '.join(sorted(pins.OCI_PINS))}")
    if pin:
        if pin not in pins.OCI_PINS:
            raise RecipeError(f"{where}pin: {pin!r} is not a pinned OCI payload",
                              hint=f"one of: {', '.join(sorted(pins.OCI_PINS))}")
        image = pins.OCI_PINS[pin].reference
    elif not _OCI_DIGEST.search(image) and not _OCI_TAG.search(image):
        raise RecipeError(f"{where}image: {image!r} names neither a digest nor a tag",
                          hint="append @sha256:<64 hex> (`coco image resolve REF` prints it), "
                          "or follow a tag (:TAG) and lock it with `coco image lock RECIPE`")
    if not _OCI_IMAGE.match(image):
        raise RecipeError(f"{where}image: {image!r} is not registry/repository:tag[@sha256:...]")
    files = _get(item, "files", dict, where, {})
    if not files:
        raise RecipeError(f"{where}files: name at least one archive member and its destination",
                          hint='for example files = { "usr/bin/kata-agent" = '
                          '"/usr/local/bin/kata-agent" }')
    for member, dest in files.items():
        if not isinstance(dest, str) or not dest.startswith("/") or ".." in dest.split("/"):
            raise RecipeError(f'{where}files."{member}": expected an absolute destination '
                              f"without '..', got {dest!r}")
        if ".." in member.split("/"):
            raise RecipeError(f'{where}files."{member}": archive member paths cannot hold ".."')
    platform = _get(item, "platform", str, where, "linux/amd64")
    if not re.fullmatch(r"[a-z0-9]+/[a-z0-9_]+", platform):
        raise RecipeError(f"{where}platform: {platform!r} is not os/architecture",
                          hint="for example linux/amd64")
    match = _OCI_DIGEST.search(image)
    return OciPayload(
        image=image,
        digest=match.group(1) if match else "",
        files=tuple(sorted(files.items())),
        layer=_get(item, "layer", str, where, ""),
        platform=platform,
        pin=pin,
    )


def _dest_map(item: dict[str, Any], where: str, example: str) -> tuple[tuple[str, str], ...]:
    """`files`: source -> absolute destination, neither holding '..'."""
    files = _get(item, "files", dict, where, {})
    if not files:
        raise RecipeError(f"{where}files: name at least one file and its destination",
                          hint=f"for example files = {{ {example} }}")
    for source, dest in files.items():
        if not isinstance(dest, str) or not dest.startswith("/") or ".." in dest.split("/"):
            raise RecipeError(f'{where}files."{source}": expected an absolute destination '
                              f"without '..', got {dest!r}")
        if ".." in source.split("/") or not source.strip("/"):
            raise RecipeError(f'{where}files."{source}": a source path cannot be empty or '
                              'hold ".."')
    return tuple(sorted(files.items()))


def _release(item: Any, i: int) -> ReleasePayload:
    """One [[payload.release]] table: a pin from images.pins.RELEASE_PINS and its files."""
    where = f"payload.release[{i}]."
    if not isinstance(item, dict):
        raise RecipeError(f"payload.release[{i}]: expected a table")
    _check_keys(item, {"pin", "files"}, where)
    pin = _get(item, "pin", str, where, "")
    if pin not in pins.RELEASE_PINS:
        raise RecipeError(f"{where}pin: {pin!r} is not a pinned release image",
                          hint=f"one of: {', '.join(sorted(pins.RELEASE_PINS))}")
    files = _dest_map(item, where, '"/usr/bin/kata-agent" = "/usr/local/bin/kata-agent"')
    for source, _ in files:
        if not source.startswith("/"):
            raise RecipeError(f'{where}files."{source}": name the absolute path inside the '
                              "image's file system", hint=f'"/{source}"')
    return ReleasePayload(pin=pin, image=pins.RELEASE_PINS[pin], files=files)


def _go(item: Any, i: int) -> GoPayload:
    """One [[payload.go]] table: a Go module group under tools/go/ and binaries it builds."""
    where = f"payload.go[{i}]."
    if not isinstance(item, dict):
        raise RecipeError(f"payload.go[{i}]: expected a table")
    _check_keys(item, {"group", "files"}, where)
    group = _get(item, "group", str, where, "")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", group):
        raise RecipeError(f"{where}group: {group!r} is not a Go tool group name",
                          hint="the name of a directory under tools/go/, e.g. caa")
    files = _dest_map(item, where, '"process-user-data" = "/usr/local/bin/process-user-data"')
    for name, _ in files:
        if "/" in name:
            raise RecipeError(f'{where}files."{name}": name a binary the group builds '
                              "(its tools.toml name), not a path")
    return GoPayload(group=group, files=files)
