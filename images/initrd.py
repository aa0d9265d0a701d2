"""The initramfs: busybox, veritysetup with its shared libraries, a handful of kernel modules and
images/initrd/init, packed as a reproducible newc cpio (written here, not by cpio(1), so inode
numbers, owners and mtimes are fixed) and gzip-compressed with mtime 0.

Files come from a tree that mmdebstrap extracted from the pinned Debian packages
(pins.INITRD_PACKAGES and the kernel package), never from the build host, so the initramfs only
depends on the recipe and the mirror state.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import ImageError

INIT_SCRIPT = Path(__file__).resolve().parent / "initrd" / "init"
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64")


@dataclass(frozen=True)
class Entry:
    path: str  # without leading slash
    mode: int
    data: bytes = b""  # file contents, or the link target for symlinks


def elf_needed(binary: bytes) -> list[str]:
    """DT_NEEDED names of an ELF64 little-endian file (System V gABI, dynamic section)."""
    if binary[:4] != b"\x7fELF" or binary[4] != 2 or binary[5] != 1:
        raise ImageError("not an ELF64 little-endian file")
    (phoff,) = struct.unpack_from("<Q", binary, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", binary, 0x36)
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: tuple[int, int] | None = None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", binary, phoff + i * phentsize
        )
        if p_type == 1:  # PT_LOAD
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return []

    def offset_of(vaddr: int) -> int:
        for start, offset, size in loads:
            if start <= vaddr < start + size:
                return offset + vaddr - start
        raise ImageError(f"ELF address {vaddr:#x} is not in a PT_LOAD segment")

    needed: list[int] = []
    strtab = 0
    for pos in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", binary, pos)
        if tag == 0:
            break
        if tag == 1:
            needed.append(value)
        elif tag == 5:
            strtab = offset_of(value)
    return [binary[strtab + n : binary.index(b"\0", strtab + n)].decode() for n in needed]


def _find_lib(tree: Path, name: str) -> str:
    for directory in LIB_DIRS:
        if _exists(tree, f"{directory}/{name}"):
            return f"{directory}/{name}"
    raise ImageError(f"shared library {name} not found in the extracted initramfs packages")


def resolve_in_tree(tree: Path, rel: str) -> Path:
    """tree/rel with every symlink (absolute ones too) resolved inside `tree`, never the host."""
    parts = [p for p in rel.split("/") if p]
    done: list[str] = []
    for _ in range(64):
        if not parts:
            return tree.joinpath(*done)
        head = parts.pop(0)
        if head == "..":
            if done:
                done.pop()
            continue
        candidate = tree.joinpath(*done, head)
        if candidate.is_symlink():
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
        else:
            done.append(head)
    raise ImageError(f"too many symlinks resolving {rel} in {tree}")


def _add_file(entries: dict[str, Entry], tree: Path, rel: str, dest: str | None = None) -> None:
    """Add tree/rel (symlinks resolved inside the tree) as a regular file at dest (default rel)."""
    real = resolve_in_tree(tree, rel)
    mode = 0o755 if real.stat().st_mode & stat.S_IXUSR else 0o644
    entries[dest or rel] = Entry(dest or rel, stat.S_IFREG | mode, real.read_bytes())


def _exists(tree: Path, rel: str) -> bool:
    return resolve_in_tree(tree, rel).exists()


def with_libraries(entries: dict[str, Entry], tree: Path, binary: str) -> None:
    """Add `binary` and the closure of its DT_NEEDED libraries, plus the dynamic loader."""
    pending = [binary]
    seen: set[str] = set()
    while pending:
        rel = pending.pop()
        if rel in seen:
            continue
        seen.add(rel)
        _add_file(entries, tree, rel)
        pending += [_find_lib(tree, n) for n in elf_needed(entries[rel].data)]
    _add_file(entries, tree, "lib64/ld-linux-x86-64.so.2")


def _module_name(path: str) -> str:
    """kernel/fs/erofs/erofs.ko.xz -> erofs; dm-verity -> dm_verity (the kernel's own naming)."""
    return Path(path).name.split(".ko")[0].replace("-", "_")


def module_closure(modules_dep: str, wanted: list[str], builtin: str = "") -> list[str]:
    """Module files (relative to lib/modules/KVER) for `wanted` and their dependencies, in load
    order (dependencies first). `modules_dep` is the text depmod -b wrote (modules.dep);
    `builtin` is the kernel package's modules.builtin: a wanted module built into the kernel
    needs no file (virtio_pci is a module in one kernel and built in in the next)."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in modules_dep.splitlines():
        module, _, rest = line.partition(":")
        deps[module] = rest.split()
        by_name[_module_name(module)] = module
    built_in = {_module_name(line) for line in builtin.split()}
    order: list[str] = []

    def visit(module: str) -> None:
        if module in order:
            return
        # modules.dep lists every transitive dependency; load them deepest first
        for dep in reversed(deps[module]):
            visit(dep)
        order.append(module)

    for name in wanted:
        key = name.replace("-", "_")
        if key in by_name:
            visit(by_name[key])
        elif key not in built_in:
            raise ImageError(
                f"kernel module {name} is neither a module nor built into this kernel",
                hint="remove it from kernel.modules in the recipe",
            )
    return order


def module_bytes(data: bytes, path: str) -> tuple[str, bytes]:
    """(file name in the initramfs, uncompressed module) for a module file: Debian's 6.12
    kernels ship them xz-compressed (CONFIG_MODULE_COMPRESS_XZ), and busybox insmod hands the
    kernel the bytes as they are, so the initramfs holds them uncompressed."""
    name = Path(path).name
    try:
        if name.endswith(".ko.xz"):
            return name[: -len(".xz")], lzma.decompress(data, format=lzma.FORMAT_XZ)
        if name.endswith(".ko.gz"):
            return name[: -len(".gz")], gzip.decompress(data)
    except (lzma.LZMAError, OSError, EOFError) as exc:
        raise ImageError(f"kernel module {path} is not a valid compressed file: {exc}") from exc
    if name.endswith(".ko"):
        return name, data
    raise ImageError(
        f"kernel module {path}: compression not supported (only .ko, .ko.xz and .ko.gz)",
        hint="choose a kernel package whose modules are xz- or gzip-compressed or plain",
    )


def cpio_newc(entries: list[Entry], mtime: int) -> bytes:
    """A newc ("070701") archive with parents first, fixed inode numbers, root owner, `mtime`."""
    out = io.BytesIO()
    dirs: set[str] = set()
    for entry in entries:
        parts = entry.path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    everything = [Entry(d, stat.S_IFDIR | 0o755) for d in sorted(dirs)]
    everything += sorted((e for e in entries if e.path not in dirs), key=lambda e: e.path)
    for ino, entry in enumerate([*everything, Entry("TRAILER!!!", 0)], start=1):
        name = entry.path.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(entry.mode) else 1
        fields = (ino, entry.mode, 0, 0, nlink, mtime, len(entry.data), 0, 0, 0, 0, len(name), 0)
        if entry.path == "TRAILER!!!":
            fields = (0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, len(name), 0)
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + name)
        out.write(b"\0" * (-out.tell() % 4))
        out.write(entry.data)
        out.write(b"\0" * (-out.tell() % 4))
    return out.getvalue()


def build(
    tree: Path,
    kernel_version: str,
    modules_dep: str,
    wanted: list[str],
    epoch: int,
    builtin: str = "",
) -> bytes:
    """The compressed initramfs for a tree holding the extracted kernel and initrd packages."""
    entries: dict[str, Entry] = {}
    entries["init"] = Entry("init", stat.S_IFREG | 0o755, INIT_SCRIPT.read_bytes())
    _add_file(
        entries,
        tree,
        "bin/busybox" if _exists(tree, "bin/busybox") else "usr/bin/busybox",
        "bin/busybox",
    )
    veritysetup = next(p for p in ("sbin/veritysetup", "usr/sbin/veritysetup") if _exists(tree, p))
    with_libraries(entries, tree, veritysetup)
    base = f"lib/modules/{kernel_version}"
    names: list[str] = []
    for module in module_closure(modules_dep, wanted, builtin):
        name, data = module_bytes(resolve_in_tree(tree, f"{base}/{module}").read_bytes(), module)
        if f"lib/modules/{name}" in entries:
            raise ImageError(f"two kernel modules are both named {name}")
        entries[f"lib/modules/{name}"] = Entry(f"lib/modules/{name}", stat.S_IFREG | 0o644, data)
        names.append(name)
    entries["etc/coco-modules"] = Entry(
        "etc/coco-modules", stat.S_IFREG | 0o644, "".join(f"{m}\n" for m in names).encode()
    )
    archive = cpio_newc(list(entries.values()), epoch)
    return gzip.compress(archive, compresslevel=6, mtime=0)
