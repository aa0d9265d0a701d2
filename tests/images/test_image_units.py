"""Fast checks of the builder's parts: no root, no network, no build."""

from __future__ import annotations

import hashlib
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from images import disk, initrd, measure, recipe
from images.errors import CommandFailed, RecipeError, ToolMissing
from images.run import check_tools, run

MINIMAL = recipe.RECIPES_DIR / "minimal.toml"


class TestRecipes:
    """Recipes parse into the declared settings; mistakes name the key and the fix."""

    def test_shipped_recipes_load(self):
        minimal = recipe.load("minimal")
        assert minimal.variant == "essential"
        assert minimal.formats == recipe.FORMATS
        assert minimal.snp_vcpus == (1, 2, 4)
        assert minimal.init == "/usr/sbin/coco-init"
        podvm = recipe.load("podvm")
        assert "systemd-sysv" in podvm.packages and "hv_storvsc" in podvm.modules

    def test_content_hash_follows_inputs(self, tmp_path: Path):
        a = recipe.load("minimal")
        text = MINIMAL.read_text().replace("packages = []", 'packages = ["kmod"]')
        # a copy: a link pointing out of the recipe's folder is refused (test_recipe_paths.py)
        shutil.copytree(recipe.RECIPES_DIR / "minimal-payload", tmp_path / "minimal-payload")
        (tmp_path / "minimal.toml").write_text(text)
        b = recipe.load(str(tmp_path / "minimal.toml"))
        assert b.packages == ("kmod",)
        assert a.content_hash() != b.content_hash()
        assert a.content_hash() == recipe.load("minimal").content_hash()

    @pytest.mark.parametrize(
        ("toml", "message"),
        [
            ('name = "x"\n[distribution]\nvariant = "tiny"\n', "distribution.variant"),
            ('name = "x"\n[distribution]\nsuites = "bookworm"\n', "distribution.suites"),
            ('name = "x"\n[outputs]\nformats = ["vmdk"]\n', "outputs.formats"),
            ('name = "x"\n[outputs]\nesp_mib = "64"\n', "outputs.esp_mib"),
            ('name = "x"\n[measure]\nsnp_vcpus = [0]\n', "measure.snp_vcpus"),
            (
                'name = "x"\n[[payload.files]]\nsource = "https://example.org/a"\ndest = "/a"\n',
                "payload.files[0].sha256",
            ),
            (
                'name = "x"\n[[payload.files]]\nsource = "nope"\ndest = "/a"\n',
                "payload.files[0].source",
            ),
            ('name = "Bad Name"\n', "name"),
        ],
    )
    def test_errors_name_the_key(self, tmp_path: Path, toml: str, message: str):
        path = tmp_path / "r.toml"
        path.write_text(toml)
        with pytest.raises(RecipeError) as info:
            recipe.load(str(path))
        assert str(info.value).startswith(message)

    def test_unknown_recipe_lists_known(self):
        with pytest.raises(RecipeError) as info:
            recipe.load("nosuch")
        assert "minimal" in info.value.hint


class TestDoor:
    """The one door: failures are one copy-pasteable line; missing tools name the package."""

    def test_failure_is_a_shell_line(self):
        with pytest.raises(CommandFailed) as info:
            run(["sh", "-c", "echo oops >&2; exit 3"])
        assert "exit code 3: " in str(info.value)
        assert "sh -c 'echo oops >&2; exit 3'" in str(info.value)
        assert "oops" in str(info.value)

    def test_missing_tool_names_debian_package(self):
        with pytest.raises(ToolMissing) as info:
            check_tools(["sh", "coco-no-such-tool"], files=["/usr/lib/systemd/no/such.stub"])
        assert [t for t, _ in info.value.missing] == [
            "coco-no-such-tool",
            "/usr/lib/systemd/no/such.stub",
        ]
        assert info.value.hint.startswith("install them with: apt-get install")

    def test_fixed_environment(self):
        out = run(["sh", "-c", "echo $LANG $TZ $SOURCE_DATE_EPOCH"])
        assert out.split()[:2] == ["C.UTF-8", "UTC"]


class TestMeasurementRules:
    """PCR replay and Authenticode rules, checked against independent computations."""

    def test_replay_is_iterated_sha256(self):
        a, b = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
        expected = hashlib.sha256(hashlib.sha256(b"\0" * 32 + a).digest() + b).digest()
        assert measure.replay([a, b]) == expected

    def test_authenticode_ignores_checksum_and_signature(self):
        """Changing the PE checksum field or appending a certificate table must not change the
        Authenticode hash; changing a code byte must."""
        import pefile

        stub = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
        if not stub.exists():
            pytest.skip("needs systemd-boot-efi")
        image = bytearray(stub.read_bytes())
        base = measure.authenticode_sha256(bytes(image))
        pe = pefile.PE(data=bytes(image), fast_load=True)
        checksum_at = pe.DOS_HEADER.e_lfanew + 24 + 64
        changed = bytearray(image)
        changed[checksum_at] ^= 0xFF
        assert measure.authenticode_sha256(bytes(changed)) == base
        signed = bytearray(image) + b"\x08\0\0\0\0\x02\x02\0"  # 8-byte WIN_CERTIFICATE stub
        cert_entry = pe.DOS_HEADER.e_lfanew + 24 + 112 + 4 * 8
        signed[cert_entry : cert_entry + 8] = len(image).to_bytes(4, "little") + (8).to_bytes(
            4, "little"
        )
        assert measure.authenticode_sha256(bytes(signed)) == base
        code = pe.sections[0].PointerToRawData + 16
        changed = bytearray(image)
        changed[code] ^= 0xFF
        assert measure.authenticode_sha256(bytes(changed)) != base


class TestInitrdPieces:
    """The initramfs helpers read ELF and modules.dep correctly and write a valid cpio."""

    def test_elf_needed_matches_the_dynamic_section(self):
        needed = initrd.elf_needed(Path("/bin/ls").read_bytes())
        assert "libc.so.6" in needed
        readelf = subprocess.run(["readelf", "-d", "/bin/ls"], capture_output=True, text=True)
        if readelf.returncode == 0:
            expected = [
                line.split("[", 1)[1].rstrip("]")
                for line in readelf.stdout.splitlines()
                if "(NEEDED)" in line
            ]
            assert needed == expected

    def test_module_closure_orders_dependencies_first(self):
        dep = (
            "kernel/drivers/md/dm-verity.ko: "
            "kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-mod.ko\n"
            "kernel/drivers/md/dm-bufio.ko:\n"
            "kernel/drivers/md/dm-mod.ko:\n"
            "kernel/fs/erofs/erofs.ko:\n"
        )
        order = initrd.module_closure(dep, ["dm_verity", "erofs"])
        assert order == [
            "kernel/drivers/md/dm-mod.ko",
            "kernel/drivers/md/dm-bufio.ko",
            "kernel/drivers/md/dm-verity.ko",
            "kernel/fs/erofs/erofs.ko",
        ]
        with pytest.raises(Exception, match="neither a module nor built into this kernel"):
            initrd.module_closure(dep, ["virtio_blk"])

    def test_module_closure_skips_built_in_modules(self):
        dep = (
            "kernel/drivers/virt/coco/sev-guest/sev-guest.ko.xz: kernel/drivers/virt/coco/tsm.ko.xz"
            " kernel/fs/configfs/configfs.ko.xz\n"
            "kernel/drivers/virt/coco/tsm.ko.xz: kernel/fs/configfs/configfs.ko.xz\n"
            "kernel/fs/configfs/configfs.ko.xz:\n"
        )
        builtin = "kernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/nvme/host/nvme.ko\n"
        order = initrd.module_closure(dep, ["virtio_pci", "sev-guest"], builtin)
        assert order == [
            "kernel/fs/configfs/configfs.ko.xz",
            "kernel/drivers/virt/coco/tsm.ko.xz",
            "kernel/drivers/virt/coco/sev-guest/sev-guest.ko.xz",
        ]
        with pytest.raises(Exception, match="neither a module nor built into"):
            initrd.module_closure(dep, ["virtio_pci"])  # not built in without modules.builtin

    def test_compressed_modules_are_stored_uncompressed(self):
        import gzip
        import lzma

        module = b"\x7fELF" + bytes(range(256)) * 8
        assert initrd.module_bytes(lzma.compress(module), "k/erofs.ko.xz") == ("erofs.ko", module)
        assert initrd.module_bytes(gzip.compress(module), "k/erofs.ko.gz") == ("erofs.ko", module)
        assert initrd.module_bytes(module, "k/erofs.ko") == ("erofs.ko", module)
        with pytest.raises(Exception, match="not a valid compressed file"):
            initrd.module_bytes(module, "k/erofs.ko.xz")
        with pytest.raises(Exception, match="compression not supported"):
            initrd.module_bytes(module, "k/erofs.ko.zst")

    def test_cpio_lists_with_gnu_cpio(self, tmp_path: Path):
        entries = [
            initrd.Entry("init", stat.S_IFREG | 0o755, b"#!/bin/sh\n"),
            initrd.Entry("lib/modules/a.ko", stat.S_IFREG | 0o644, b"x" * 5),
        ]
        archive = initrd.cpio_newc(entries, 1795737600)
        assert archive == initrd.cpio_newc(list(reversed(entries)), 1795737600)
        if subprocess.run(["which", "cpio"], capture_output=True).returncode != 0:
            pytest.skip("cpio not installed")
        listing = subprocess.run(["cpio", "-it"], input=archive, capture_output=True, check=True)
        names = listing.stdout.decode().split()
        assert names == ["lib", "lib/modules", "init", "lib/modules/a.ko"]


class TestVhdFooter:
    """The fixed VHD footer follows the VHD specification (checksum, geometry, type)."""

    def test_footer_fields(self):
        footer = disk.vhd_footer(118 << 20, epoch=1795737600, unique_id=uuid.UUID(int=1))
        assert len(footer) == 512 and footer[:8] == b"conectix"
        assert int.from_bytes(footer[48:56], "big") == 118 << 20
        unsummed = footer[:64] + b"\0\0\0\0" + footer[68:]
        assert int.from_bytes(footer[64:68], "big") == ~sum(unsummed) & 0xFFFFFFFF

    def test_geometry_examples(self):
        # 127 MiB: 260096 sectors -> spt 17 gives cth 15299 -> heads 15 -> cylinders 1019
        assert disk.vhd_geometry(127 << 20) == (1019, 15, 17)
        # a 2 TiB-ish disk saturates at 65535 x 16 x 255
        assert disk.vhd_geometry(2 << 40) == (65535, 16, 255)


class TestPeChecksum:
    """Our fast PE checksum equals pefile's reference implementation."""

    def test_equals_pefile(self):
        import pefile

        from images.uki import pe_checksum

        stub = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
        if not stub.exists():
            pytest.skip("needs systemd-boot-efi")
        for data in (stub.read_bytes(), stub.read_bytes() + b"\x01\x02\x03"):
            pe = pefile.PE(data=data, fast_load=True)
            checksum_at = pe.DOS_HEADER.e_lfanew + 24 + 64
            assert pe_checksum(data, checksum_at) == pe.generate_checksum()


class TestCli:
    """`coco image` turns errors into `error:`/`hint:` lines and exit codes."""

    def test_unknown_recipe_exit_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
        from cli.image import main

        assert main(["image", "build", "nosuch", "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "error: no recipe named 'nosuch'" in err
        assert "hint: known recipes: minimal, podvm" in err

    def test_boot_without_build_is_an_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ):
        from cli.image import main

        assert main(["image", "boot", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "holds no built image" in err and "hint: build one first" in err


class TestDebug:
    """--debug prints every command as a copy-pasteable line before running it."""

    def test_debug_prints_command(self, capsys: pytest.CaptureFixture[str]):
        from images.run import configure

        configure(debug=True, source_date_epoch=0)
        try:
            run(["sh", "-c", "true"])
        finally:
            configure(debug=False, source_date_epoch=0)
        assert "sh -c true" in capsys.readouterr().err
        run(["sh", "-c", "true"])
        assert "sh -c true" not in capsys.readouterr().err


class TestNoPulumi:
    """The builder and its CLI import without Pulumi (the `coco image` path and the GuestImage
    command subprocess stay light)."""

    @pytest.mark.parametrize("module", ["cli.image", "images.build", "images.boot"])
    def test_no_pulumi(self, module: str):
        import sys

        code = f"import sys, {module}; print(any(m.split('.')[0] == 'pulumi' for m in sys.modules))"
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert out == "False"


class TestBuildHostSafety:
    """Nothing from a recipe can write outside the image or weaken apt's checks, and the build
    host's identity does not end up in the image."""

    @pytest.mark.parametrize("dest", ["relative/x", "/../../etc/x", "/usr/../../x", "/"])
    def test_payload_escapes_refused(self, tmp_path, dest):
        from images.errors import ImageError
        from images.rootfs import payload_target

        with pytest.raises(ImageError):
            payload_target(tmp_path, dest)

    def test_payload_through_symlink_refused(self, tmp_path):
        from images.errors import ImageError
        from images.rootfs import payload_target

        (tmp_path / "var").mkdir()
        (tmp_path / "var" / "run").symlink_to("/run")
        with pytest.raises(ImageError, match="symlink"):
            payload_target(tmp_path, "/var/run/x")

    def test_payload_parents_created_0755(self, tmp_path):
        import os
        import stat

        from images.rootfs import payload_target

        old = os.umask(0o077)
        try:
            target = payload_target(tmp_path, "/usr/local/bin/tool")
        finally:
            os.umask(old)
        assert target == tmp_path / "usr" / "local" / "bin" / "tool"
        assert stat.S_IMODE((tmp_path / "usr" / "local").stat().st_mode) == 0o755

    @pytest.mark.parametrize("key,value", [
        ("mirror", "[trusted=yes] http://deb.debian.org/debian"),
        ("mirror", "http://deb.debian.org/debian main\ndeb http://evil/ x"),
        ("security_mirror", "[trusted=yes] http://deb.debian.org/debian-security"),
        ("security_mirror", "http://x/ bookworm-security main\ndeb http://evil/ x"),
        ("suite", "bookworm main"),
        ("path_exclude", "/usr/share/doc/*\nforce-unsafe-io"),
    ])
    def test_recipe_values_reaching_apt_refused(self, tmp_path, key, value):
        import tomllib

        from images import recipe
        from images.errors import RecipeError

        data = tomllib.loads((recipe.RECIPES_DIR / "minimal.toml").read_text())
        data.setdefault("distribution", {})[key] = [value] if key == "path_exclude" else value
        with pytest.raises(RecipeError, match=f"distribution.{key}"):
            recipe.parse(data, recipe.RECIPES_DIR / "minimal.toml")

    def test_the_security_suite_is_read_with_the_main_suite(self):
        from images import pins, recipe, rootfs

        loaded = recipe.load("minimal")
        assert loaded.sources == (
            (pins.DEBIAN_MIRROR, pins.DEBIAN_SUITE),
            (pins.DEBIAN_SECURITY_MIRROR, f"{pins.DEBIAN_SUITE}-security"),
        )
        for stage in (rootfs.rootfs_stage(loaded), rootfs.boot_tree_stage(loaded)):
            assert stage.sources == (
                f"deb {pins.DEBIAN_MIRROR} bookworm main",
                f"deb {pins.DEBIAN_SECURITY_MIRROR} bookworm-security main",
            )
            argv = stage.argv(Path("/tmp/out.tar"))
            assert argv[-3:] == ["/tmp/out.tar", *stage.sources]
            assert argv[-4] == "bookworm"

    def test_security_false_reads_the_main_suite_only(self):
        import tomllib

        from images import recipe, rootfs
        from images.errors import RecipeError

        path = recipe.RECIPES_DIR / "minimal.toml"
        data = tomllib.loads(path.read_text())
        data["distribution"]["security"] = False
        loaded = recipe.parse(data, path)
        assert loaded.sources == ((loaded.mirror, loaded.suite),)
        assert len(rootfs.rootfs_stage(loaded).sources) == 1
        assert loaded.canonical() != recipe.load("minimal").canonical()  # a new content hash
        data["distribution"]["security_mirror"] = "http://mirror.example/debian-security"
        with pytest.raises(RecipeError, match=r"distribution\.security_mirror: set, but"):
            recipe.parse(data, path)
        data["distribution"]["security"] = "no"
        with pytest.raises(RecipeError, match=r"distribution\.security: expected bool"):
            recipe.parse(data, path)

    def test_every_mirror_state_is_in_the_stage_key(self, monkeypatch):
        from images import recipe, rootfs

        monkeypatch.setattr(rootfs, "run", lambda argv: "mmdebstrap 1.3.5")
        stage = rootfs.rootfs_stage(recipe.load("minimal"))
        main = rootfs.MirrorState("http://m", "bookworm", "a" * 64)
        security = rootfs.MirrorState("http://s", "bookworm-security", "b" * 64)
        key = rootfs.stage_key(stage, (main, security), 1)
        moved = rootfs.MirrorState("http://s", "bookworm-security", "c" * 64)
        assert rootfs.stage_key(stage, (main, moved), 1) != key  # a security update: new root
        assert rootfs.stage_key(stage, (main, security), 1) == key

    def test_mirror_states_read_each_suites_inrelease(self, server):
        import dataclasses
        import hashlib

        from images import recipe, rootfs
        from images.errors import DownloadError

        for suite, body in (("bookworm", b"main"), ("bookworm-security", b"security")):
            (server.root / "debian" / "dists" / suite).mkdir(parents=True)
            (server.root / "debian" / "dists" / suite / "InRelease").write_bytes(body)
        mirror = server.url("debian")
        loaded = dataclasses.replace(
            recipe.load("minimal"), mirror=mirror, security_mirror=mirror
        )
        states = rootfs.mirror_states(loaded)
        assert [(s.suite, s.inrelease_sha256) for s in states] == [
            ("bookworm", hashlib.sha256(b"main").hexdigest()),
            ("bookworm-security", hashlib.sha256(b"security").hexdigest()),
        ]
        assert server.requests == [
            "/debian/dists/bookworm/InRelease",
            "/debian/dists/bookworm-security/InRelease",
        ]
        gone = dataclasses.replace(loaded, security_mirror=server.url("nowhere"))
        with pytest.raises(DownloadError, match="nowhere/dists/bookworm-security/InRelease"):
            rootfs.mirror_states(gone)

    def test_host_files_normalized(self, tmp_path):
        from images.rootfs import HOST_FILES, normalize_host_files

        (tmp_path / "etc").mkdir()
        (tmp_path / "etc" / "hostname").write_text("build-host-42\n")
        (tmp_path / "etc" / "resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
        normalize_host_files(tmp_path)
        for rel, text in HOST_FILES.items():
            assert not (tmp_path / rel).is_symlink()
            assert (tmp_path / rel).read_text() == text


class TestPayloadDownload:
    """Payload artifacts fetched by URL are verified by sha256 before use (served here from a
    loopback HTTP server), and a changed artifact is refused."""

    @pytest.fixture
    def served(self, tmp_path):
        import functools
        import http.server
        import threading

        (tmp_path / "www").mkdir()
        (tmp_path / "www" / "agent.tar").write_bytes(b"guest components v1")
        handler = functools.partial(
            http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www")
        )
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/agent.tar"
        finally:
            server.shutdown()

    def test_verified_and_cached(self, served, tmp_path, monkeypatch):
        import hashlib

        from images import rootfs

        monkeypatch.setenv("COCO_IMAGE_CACHE", str(tmp_path / "cache"))
        digest = hashlib.sha256(b"guest components v1").hexdigest()
        path = rootfs.fetch(served, digest)
        assert path.read_bytes() == b"guest components v1"
        assert path.parent == tmp_path / "cache" / "downloads"

    def test_wrong_checksum_refused(self, served, tmp_path, monkeypatch):
        from images import rootfs
        from images.errors import DownloadError

        monkeypatch.setenv("COCO_IMAGE_CACHE", str(tmp_path / "cache"))
        with pytest.raises(DownloadError, match="has sha256"):
            rootfs.fetch(served, "0" * 64)
        assert not (tmp_path / "cache" / "downloads" / ("0" * 64)).exists()
