"""The read-only root: erofs (lz4hc) with a fixed timestamp and UUID, then a dm-verity hash tree
in a separate file (veritysetup format) with a fixed salt and UUID.

The root hash is read from --root-hash-file, not parsed from veritysetup's human output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .run import run

BLOCK = 4096


@dataclass(frozen=True)
class Verity:
    root_hash: str
    salt: str
    uuid: str
    data_blocks: int
    data_block_size: int = BLOCK
    hash_block_size: int = BLOCK
    hash_algorithm: str = "sha256"


def make_erofs(root: Path, out: Path, *, epoch: int, uuid: str) -> None:
    # -T fixes every inode's timestamp (and the build time) to SOURCE_DATE_EPOCH; erofs-utils
    # sorts directory entries itself, so readdir order does not leak into the image.
    run(["mkfs.erofs", "--quiet", "-zlz4hc", f"-T{epoch}", f"-U{uuid}", out, root])


def make_verity(data: Path, hash_out: Path, *, salt: str, uuid: str, workdir: Path) -> Verity:
    root_hash_file = workdir / "roothash"
    run(
        [
            "veritysetup",
            "format",
            "--hash=sha256",
            f"--data-block-size={BLOCK}",
            f"--hash-block-size={BLOCK}",
            f"--salt={salt}",
            f"--uuid={uuid}",
            f"--root-hash-file={root_hash_file}",
            data,
            hash_out,
        ]
    )
    return Verity(
        root_hash=root_hash_file.read_text().strip(),
        salt=salt,
        uuid=uuid,
        data_blocks=data.stat().st_size // BLOCK,
    )
