"""Lock files: registry tags a recipe follows, resolved once to manifest digests.

A `[[payload.oci]]` entry may name an image by tag only (`registry/repository:tag`, no
`@sha256:...`) when its user wants to follow that tag. The build never resolves a tag itself:
`coco image lock RECIPE` asks the registry (distribution API, the same anonymous client that
pulls by digest, images/oci.py) which manifest each tag points to now and writes
`<recipe stem>.lock.json` next to the recipe; the build then requires it and pulls by the locked
digest only. A tag moved upstream changes nothing until someone re-locks, and a registry serving
other bytes than the locked digest is refused like any other pinned digest.

The file is deterministic (sorted, two-space JSON, no times): the same registry state gives
byte-identical locks, so committing it shows a tag move as a one-line diff. Each entry keeps the
time-free provenance: the reference as the recipe writes it, registry, repository, tag, digest
and the manifest's media type.

Non-goals: entries pinned by digest (nothing to lock), `pin = "NAME"` entries (their digests
live in spec/versions.py), signature or attestation checks of what a tag points to.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RecipeError
from .recipe import OciPayload, Recipe

SCHEMA = "coco-stack/image-lock/v1"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def lock_path(recipe: Recipe) -> Path:
    """Where the lock of a recipe lives: next to it, `<stem>.lock.json`."""
    return recipe.lock_path


def follows_tag(item: OciPayload) -> bool:
    """An `image = "registry/repository:tag"` entry without a digest: it needs the lock."""
    return not item.pin and not item.digest


def tagged(recipe: Recipe) -> list[tuple[int, OciPayload]]:
    return [(i, item) for i, item in enumerate(recipe.oci) if follows_tag(item)]


@dataclass(frozen=True)
class Entry:
    """One tag resolved to a manifest digest."""

    image: str  # the reference as the recipe writes it (registry/repository:tag)
    registry: str
    repository: str
    tag: str
    digest: str
    media_type: str

    def to_json(self) -> dict[str, str]:
        return {
            "digest": self.digest,
            "image": self.image,
            "mediaType": self.media_type,
            "registry": self.registry,
            "repository": self.repository,
            "tag": self.tag,
        }


def render(recipe: Recipe, entries: Iterable[Entry]) -> str:
    """The lock file's text: one entry per distinct tag reference, sorted by it."""
    rows = sorted({e.image: e for e in entries}.values(), key=lambda e: e.image)
    data = {
        "schema": SCHEMA,
        "recipe": recipe.name,
        "comment": "written by `coco image lock`; re-run it to follow the tags again",
        "images": [e.to_json() for e in rows],
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def read(recipe: Recipe) -> dict[str, Entry]:
    """The lock next to `recipe` (image reference -> entry); {} when there is none."""
    path = lock_path(recipe)
    if not path.is_file():
        return {}
    hint = f"re-create it: coco image lock {recipe.path}"
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecipeError(f"{path.name}: not a lock file ({exc})", hint=hint) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise RecipeError(f"{path.name}: schema is not {SCHEMA}", hint=hint)
    images = data.get("images")
    if not isinstance(images, list):
        raise RecipeError(f"{path.name}: images: expected a list", hint=hint)
    entries: dict[str, Entry] = {}
    for i, row in enumerate(images):
        entry = _entry(row, f"{path.name}: images[{i}]", hint)
        entries[entry.image] = entry
    return entries


def _entry(row: Any, where: str, hint: str) -> Entry:
    from .oci import Reference

    fields = ("image", "registry", "repository", "tag", "digest", "mediaType")
    if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in fields):
        raise RecipeError(f"{where}: expected the strings {', '.join(fields)}", hint=hint)
    entry = Entry(
        row["image"], row["registry"], row["repository"], row["tag"], row["digest"],
        row["mediaType"],
    )
    if not _DIGEST.match(entry.digest):
        raise RecipeError(f"{where}.digest: {entry.digest!r} is not sha256:<64 hex>", hint=hint)
    try:
        ref = Reference.parse(entry.image)
    except ValueError as exc:
        raise RecipeError(f"{where}.image: {exc}", hint=hint) from None
    if (ref.registry, ref.repository, ref.tag, ref.digest) != (
        entry.registry, entry.repository, entry.tag, ""
    ):
        raise RecipeError(
            f"{where}: registry, repository and tag do not spell image {entry.image!r}",
            hint=hint,
        )
    return entry


def locked(recipe: Recipe) -> Recipe:
    """`recipe` with every tag-only entry pinned to its locked digest. Raises RecipeError,
    naming the recipe key, for a tag without a lock entry and for a lock entry no tag of the
    recipe names any more (the recipe changed since it was locked)."""
    entries = read(recipe)
    hint = f"with registry access run: coco image lock {recipe.path}"
    oci = list(recipe.oci)
    wanted = set()
    for i, item in tagged(recipe):
        wanted.add(item.image)
        entry = entries.get(item.image)
        if entry is None:
            state = "no lock file" if not entries and not lock_path(recipe).exists() else (
                f"no entry for it in {lock_path(recipe).name}"
            )
            raise RecipeError(
                f"payload.oci[{i}].image: {item.image!r} follows a tag and has {state}; the "
                "build never resolves tags itself",
                hint=hint + " (or pin the image by digest: append @sha256:<64 hex>)",
            )
        oci[i] = dataclasses.replace(item, image=f"{item.image}@{entry.digest}",
                                     digest=entry.digest)
    stale = sorted(set(entries) - wanted)
    if stale:
        raise RecipeError(
            f"{lock_path(recipe).name}: images: {stale[0]!r} is locked but no payload.oci "
            "entry of the recipe follows that tag (the recipe changed since it was locked)",
            hint=hint,
        )
    return dataclasses.replace(recipe, oci=tuple(oci))


def resolve(recipe: Recipe, client: Any = None) -> list[Entry]:
    """Ask the registries what each tag the recipe follows points to now (network)."""
    from .oci import Client, Reference

    client = client or Client()
    entries = []
    for image in sorted({item.image for _, item in tagged(recipe)}):
        ref = Reference.parse(image)
        digest, media_type = client.resolve_manifest(ref)
        entries.append(Entry(image, ref.registry, ref.repository, ref.tag, digest, media_type))
    return entries


def write(recipe: Recipe, entries: list[Entry]) -> Path | None:
    """Write the lock (atomically); with no tag to lock remove a stale one. Returns its path,
    or None when the recipe follows no tag."""
    path = lock_path(recipe)
    if not entries:
        path.unlink(missing_ok=True)
        return None
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(render(recipe, entries))
    partial.replace(path)
    return path
