"""Payloads from OCI registries: an image or artifact pinned by manifest digest, fetched with the
OCI distribution API, every blob checked against its digest, one layer's archive extracted into
the root file system deterministically.

Scope: anonymous pulls over the distribution API (OCI distribution-spec v1.1, "Pulling"), with
the bearer-token flow quay.io and ghcr.io use for public repositories (distribution
docs/spec/auth/token.md: a 401 names a realm, service and scope; an anonymous GET on the realm
returns the token). Manifests, indexes (a platform is picked) and layer blobs are kept in the
image cache under their sha256 (`<cache>/oci/sha256/<hex>`, written atomically). A layer is a tar
archive, plain or compressed with gzip, xz or zstd (detected from its first bytes: oras stores
`.tar.xz`/`.tar.zst` files as layers under the plain tar media type); the recipe maps archive
members (files or directories) to absolute destinations. Extracted entries are owned by root,
keep their permission bits (setuid/setgid/sticky dropped) and get mtime = min(mtime,
SOURCE_DATE_EPOCH); directories created or written into on the way get SOURCE_DATE_EPOCH, so
the owners and times of the build host and of the archive's builder do not reach the image.

Non-goals: registry credentials (private repositories), pushing, signature or provenance
verification (the pinned digest is the trust anchor), and whiteout semantics across several
image layers (one layer per payload entry).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import posixpath
import re
import shutil
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import requests
import zstandard

from .cache import cache_dir, sha256_file
from .errors import DownloadError, ImageError, RecipeError, ReferenceRefused
from .recipe import OciPayload
from .rootfs import payload_directory, payload_target

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
TITLE = "org.opencontainers.image.title"  # oras names each file layer with this annotation
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REFERENCE = re.compile(
    r"^(?P<registry>[A-Za-z0-9.-]+(:\d+)?)/(?P<repository>[a-z0-9]+([._/-][a-z0-9]+)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class Reference:
    """registry/repository[:tag][@sha256:...]; the tag is informative once a digest is set."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, text: str) -> Reference:
        match = _REFERENCE.match(text)
        if match is None:
            raise ValueError(
                f"{text!r} is not an image reference: registry/repository[:tag]@sha256:<64 hex>"
            )
        return cls(
            match["registry"], match["repository"], match["tag"] or "", match["digest"] or ""
        )

    @property
    def base_url(self) -> str:
        # plain HTTP only on loopback (the test registry), as docker treats localhost
        host = self.registry.rsplit(":", 1)[0] if "]" not in self.registry else self.registry
        scheme = "http" if host in _LOOPBACK else "https"
        return f"{scheme}://{self.registry}/v2/{self.repository}"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        text += f":{self.tag}" if self.tag else ""
        return text + (f"@{self.digest}" if self.digest else "")


class Client:
    """A pull-only distribution API client with the anonymous bearer-token flow."""

    def __init__(self, session: requests.Session | None = None, timeout: float = 300.0) -> None:
        self.session = session or requests.Session()
        self.timeout = timeout
        self._tokens: dict[str, str] = {}

    def _get(self, ref: Reference, path: str, accept: str = "") -> requests.Response:
        url = f"{ref.base_url}/{path}"
        headers = {"Accept": accept} if accept else {}
        try:
            response = self._request(url, headers, ref.repository)
        except requests.RequestException as exc:
            raise DownloadError(f"cannot reach the registry for {ref}: {exc}") from exc
        if response.status_code != 200:
            response.close()
            refused = 400 <= response.status_code < 500
            raise (ReferenceRefused if refused else DownloadError)(
                f"GET {url} answered HTTP {response.status_code}",
                hint="check the reference in the recipe; only public repositories can be pulled",
            )
        return response

    def _request(self, url: str, headers: dict[str, str], repository: str) -> requests.Response:
        if repository in self._tokens:
            headers = {**headers, "Authorization": f"Bearer {self._tokens[repository]}"}
        response = self.session.get(url, headers=headers, stream=True, timeout=self.timeout)
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code != 401 or not challenge.lower().startswith("bearer "):
            return response
        response.close()
        self._tokens[repository] = self._token(challenge, repository)
        headers = {**headers, "Authorization": f"Bearer {self._tokens[repository]}"}
        return self.session.get(url, headers=headers, stream=True, timeout=self.timeout)

    def _token(self, challenge: str, repository: str) -> str:
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", "")
        if not realm:
            raise DownloadError(f"the registry's challenge names no token realm: {challenge}")
        params.setdefault("scope", f"repository:{repository}:pull")
        answer = self.session.get(realm, params=params, timeout=self.timeout)
        if answer.status_code != 200:
            raise DownloadError(
                f"anonymous token request to {realm} answered HTTP {answer.status_code}",
                hint="the repository may be private; only public repositories can be pulled",
            )
        body = answer.json()
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise DownloadError(f"the token endpoint {realm} returned no token")
        return token

    def resolve(self, ref: Reference) -> str:
        """The digest a tag points to now (sha256 of the manifest bytes the registry serves)."""
        return self.resolve_manifest(ref)[0]

    def resolve_manifest(self, ref: Reference) -> tuple[str, str]:
        """(digest, media type) of the manifest or index a tag points to now: the digest is the
        sha256 of the bytes served (distribution-spec "Pulling manifests"), checked against the
        registry's Docker-Content-Digest header when it sends one."""
        with self._get(ref, f"manifests/{ref.tag or 'latest'}", ACCEPT) as response:
            body = response.content
            header = response.headers.get("Docker-Content-Digest", "")
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if header and header != digest:
            raise DownloadError(
                f"{ref}: the registry names the manifest {header} but served bytes with "
                f"digest {digest}",
                hint="the registry rewrote the manifest; lock against another mirror",
            )
        try:
            declared = json.loads(body).get("mediaType", "")
        except (ValueError, AttributeError):
            declared = ""
        media_type = declared or content_type
        if media_type not in (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST):
            raise DownloadError(
                f"{ref}: the tag points to a {media_type or 'untyped'} manifest",
                hint="only OCI and Docker v2 manifests and indexes can be pulled",
            )
        return digest, media_type

    def manifest(self, ref: Reference, digest: str) -> dict[str, Any]:
        data = self._cached(ref, f"manifests/{digest}", digest, ACCEPT).read_bytes()
        parsed: dict[str, Any] = json.loads(data)
        return parsed

    def blob(self, ref: Reference, digest: str) -> Path:
        return self._cached(ref, f"blobs/{digest}", digest)

    def _cached(self, ref: Reference, path: str, digest: str, accept: str = "") -> Path:
        """A blob from the content-addressed cache, fetched and verified on a miss."""
        if not _DIGEST.match(digest):
            raise DownloadError(f"{ref}: unsupported digest {digest!r} (only sha256 is verified)")
        directory = cache_dir() / "oci" / "sha256"
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / digest.removeprefix("sha256:")
        if target.exists() and "sha256:" + sha256_file(target) == digest:
            return target
        partial = directory / f".{target.name}.{os.getpid()}"
        hasher = hashlib.sha256()
        try:
            with self._get(ref, path, accept) as response, partial.open("wb") as out:
                for chunk in response.iter_content(1 << 20):
                    hasher.update(chunk)
                    out.write(chunk)
            actual = "sha256:" + hasher.hexdigest()
            if actual != digest:
                raise DownloadError(
                    f"{ref}: {path} has digest {actual}, expected {digest}",
                    hint="the registry served other bytes than the pinned digest names: the "
                    "content was tampered with or the pin is wrong",
                )
            partial.replace(target)  # atomic: never a truncated cache entry
        finally:
            partial.unlink(missing_ok=True)
        return target


@dataclass(frozen=True)
class Layer:
    digest: str
    media_type: str
    title: str
    manifest_digest: str


def pull_layer(
    client: Client, ref: Reference, layer: str, platform: str = "linux/amd64"
) -> tuple[Layer, Path]:
    """The pinned manifest (through an index for `platform`), the layer chosen by its title
    annotation or digest (or the only one), and that layer's verified blob."""
    manifest_digest = ref.digest
    manifest = client.manifest(ref, manifest_digest)
    if manifest.get("mediaType") in (OCI_INDEX, DOCKER_LIST) or "manifests" in manifest:
        os_name, _, arch = platform.partition("/")
        matches = [
            m
            for m in manifest.get("manifests", [])
            if m.get("platform", {}).get("os") == os_name
            and m.get("platform", {}).get("architecture") == arch
        ]
        if len(matches) != 1:
            raise ImageError(f"{ref}: the index has {len(matches)} manifests for {platform}")
        manifest_digest = matches[0]["digest"]
        manifest = client.manifest(ref, manifest_digest)
    layers = [
        Layer(
            d["digest"],
            d.get("mediaType", ""),
            d.get("annotations", {}).get(TITLE, ""),
            manifest_digest,
        )
        for d in manifest.get("layers", [])
    ]
    if layer:
        chosen = [x for x in layers if layer in (x.title, x.digest)]
    else:
        chosen = layers if len(layers) == 1 else []
    if len(chosen) != 1:
        names = ", ".join(x.title or x.digest for x in layers)
        raise ImageError(
            f"{ref}: no single layer {layer!r}" if layer else f"{ref} has {len(layers)} layers",
            hint=f"set `layer` to one of: {names}",
        )
    return chosen[0], client.blob(ref, chosen[0].digest)


@contextmanager
def open_archive(blob: Path) -> Iterator[IO[bytes]]:
    """The layer's tar stream, decompressed according to its magic bytes."""
    with blob.open("rb") as raw, ExitStack() as stack:
        magic = raw.read(6)
        raw.seek(0)
        if magic.startswith(b"\x1f\x8b"):
            yield cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=raw)))
        elif magic == b"\xfd7zXZ\x00":
            yield cast(IO[bytes], stack.enter_context(lzma.LZMAFile(raw)))
        elif magic.startswith(b"\x28\xb5\x2f\xfd"):
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            yield cast(IO[bytes], stack.enter_context(reader))
        else:
            yield raw


def _member_name(name: str) -> str:
    normal = posixpath.normpath("/" + name).lstrip("/")
    return normal or "."


def _destination(name: str, files: dict[str, str]) -> str | None:
    for source, dest in files.items():
        if source == "." or name == source:
            rest = name if source == "." else ""
        elif name.startswith(source + "/"):
            rest = name[len(source) + 1 :]
        else:
            continue
        return posixpath.join(dest, rest) if rest and rest != "." else dest
    return None


def extract(
    blob: Path, files: dict[str, str], root: Path, epoch: int, where: str = "files"
) -> list[dict[str, str]]:
    """Extract the archive members `files` maps (member -> absolute destination; a directory
    member takes its subtree, "." the whole archive) into `root`. Returns each regular file
    placed with its sha256, sorted by destination."""
    wanted = {_member_name(k): v for k, v in files.items()}
    seen: set[str] = set()
    placed: dict[str, str] = {}
    stamps: dict[Path, int] = {}
    with open_archive(blob) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            name = _member_name(member.name)
            if name.split("/")[0] == "..":
                raise ImageError(f"archive member {member.name!r} leaves the archive")
            dest = _destination(name, wanted)
            if dest is None:
                continue
            seen.update(k for k in wanted if k in (".", name) or name.startswith(k + "/"))
            for parent in _parents(root, dest):
                # directories made or changed on the way get the epoch, unless a member names them
                stamps.setdefault(parent, epoch)
            target = _place(archive, member, root, dest, placed)
            stamps[target] = min(int(member.mtime), epoch)
    missing = sorted(set(wanted) - seen)
    if missing:
        raise ImageError(
            f"{where}: {missing[0]!r} is not in the layer's archive",
            hint="list the archive (tar -tf) and use a member path from it",
        )
    # deepest first, so setting a file's time never touches its directory's again
    for path, stamp in sorted(stamps.items(), key=lambda item: -len(item[0].parts)):
        os.utime(path, (stamp, stamp), follow_symlinks=False)
    return [{"dest": d, "sha256": s} for d, s in sorted(placed.items())]


def _parents(root: Path, dest: str) -> list[Path]:
    parents, current = [], root
    for part in Path(dest).parts[1:-1]:
        current = current / part
        parents.append(current)
    return parents


def _place(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    root: Path,
    dest: str,
    placed: dict[str, str],
) -> Path:
    mode = member.mode & 0o777  # no setuid, setgid or sticky bits from a download
    if member.isdir():
        target = payload_directory(root, dest)
        target.chmod(mode)
    elif member.isfile():
        target = payload_target(root, dest)
        source = archive.extractfile(member)
        if source is None:
            raise ImageError(f"archive member {member.name!r} has no data")
        with target.open("wb") as out:
            shutil.copyfileobj(source, out)
        target.chmod(mode)
        placed[dest] = hashlib.sha256(target.read_bytes()).hexdigest()
    elif member.issym():
        target = payload_target(root, dest)
        target.unlink(missing_ok=True)
        target.symlink_to(member.linkname)
    else:
        raise ImageError(
            f"archive member {member.name!r} is a "
            + ("hard link" if member.islnk() else "special file"),
            hint="only regular files, directories and symbolic links are extracted",
        )
    if os.geteuid() == 0:
        os.chown(target, 0, 0, follow_symlinks=False)
    return target


def install(
    payloads: Sequence[OciPayload], root: Path, epoch: int, client: Client | None = None
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Pull and extract every [[payload.oci]] entry into `root`. Returns the layers used
    (reference, manifest and layer digests) and each file placed, for measurements.json."""
    client = client or Client()
    layers, placed = [], []
    for i, item in enumerate(payloads):
        ref = Reference.parse(item.image)
        if not ref.digest:  # tags are resolved by `coco image lock` only, never here
            raise RecipeError(
                f"payload.oci[{i}].image: {item.image!r} is not pinned by digest",
                hint="lock the recipe's tags (coco image lock RECIPE); the build reads the lock",
            )
        layer, blob = pull_layer(client, ref, item.layer, item.platform)
        layers.append(
            {
                "image": item.image,
                "manifest": layer.manifest_digest,
                "layer": layer.digest,
                "title": layer.title,
            }
        )
        files = extract(blob, dict(item.files), root, epoch, where=f"payload.oci[{i}].files")
        placed += [
            {"dest": f["dest"], "source": f"{item.image}#{layer.digest}", "sha256": f["sha256"]}
            for f in files
        ]
    return layers, placed
