"""kbs-config.toml, policies, reference values and the spec rules around them."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest

from components.kbs import config as kbs_config
from spec.errors import SpecError
from spec.validate import validate
from tests.components.kbs.upstream_v0_21 import ACL_PREFIX, ACL_SUFFIX, CONFIG_KEYS, ENUMS
from tests.conftest import ROOT


def key_paths(value: Any, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            found |= key_paths(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for v in value:
            found |= key_paths(v, f"{prefix}[]")
    else:
        found[prefix] = value
    return found


@pytest.fixture(params=[False, True], ids=["https", "insecure-http"])
def parsed(request) -> dict[str, Any]:
    return tomllib.loads(kbs_config.kbs_config_toml(stack="s", insecure_http=request.param))


class TestKbsConfig:
    def test_every_key_is_one_the_pinned_release_reads(self, parsed):
        unknown = set(key_paths(parsed)) - CONFIG_KEYS
        assert unknown == set()

    def test_enumerated_values(self, parsed):
        paths = key_paths(parsed)
        for path, allowed in ENUMS.items():
            if path in paths:
                assert paths[path] in allowed, path

    def test_secure_defaults(self):
        c = tomllib.loads(kbs_config.kbs_config_toml(stack="prod"))
        assert c["http_server"]["insecure_http"] is False
        assert c["http_server"]["private_key"] == kbs_config.TLS_KEY
        assert c["http_server"]["certificate"] == kbs_config.TLS_CERT
        assert c["http_server"]["sockets"] == ["0.0.0.0:8080"]  # default is 127.0.0.1
        assert c["admin"]["authorization_mode"] == "AuthenticatedAuthorization"
        idp = c["admin"]["authentication"]["bearer_jwt"]["identity_providers"]
        assert idp == [
            {
                "issuer": "coco-stack/prod",
                "audience": "kbs-admin",
                "public_key_uri": kbs_config.ADMIN_PUBLIC_KEY,
            }
        ]
        assert c["attestation_service"]["type"] == "coco_as_builtin"
        assert c["attestation_service"]["rvps_config"] == {"type": "BuiltIn"}
        assert c["storage_backend"]["storage_type"] == "LocalFs"  # persistent, not Memory
        assert c["plugins"] == [{"name": "resource", "storage_backend_type": "kvstorage"}]
        token = c["attestation_token"]
        assert token == {"trusted_certs_paths": [kbs_config.CA_CERT], "insecure_header_jwk": False}

    def test_acl_is_anchored_and_narrow(self):
        (acl,) = kbs_config.kbs_config(stack="s")["admin"]["authorization"]["regex_acl"]["acls"]
        pattern = acl["allowed_endpoints"]
        assert pattern.startswith(ACL_PREFIX) and pattern.endswith(ACL_SUFFIX)
        for allowed in (
            "/kbs/v0/resource/default/key/1",
            "/kbs/v0/resource-policy",
            "/kbs/v0/attestation-policy",
            "/kbs/v0/reference-value/snp_launch_measurement",
        ):
            assert re.match(pattern, allowed), allowed
        for denied in ("/kbs/v0/resource/a/b", "/kbs/v0/attest", "/kbs/v0/auth", "/metrics"):
            assert not re.match(pattern, denied), denied

    def test_deterministic(self):
        assert kbs_config.kbs_config_toml(stack="s") == kbs_config.kbs_config_toml(stack="s")


class TestLayoutAndValues:
    def test_local_fs_name(self):
        # deps/key-value-storage/src/local_fs/mod.rs: key.replace('/', "\\x2F")
        assert kbs_config.local_fs_name("default/key/1") == "default" + "\\" + "x2Fkey\\x2F1"
        assert len(kbs_config.local_fs_name("a/b/c")) == len("a/b/c") + 2 * 3

    def test_reference_value_record_format(self):
        record = json.loads(kbs_config.reference_value_record("mr_td", ["bb", "aa", "bb"]))
        assert record == {
            "version": "0.1.0",
            "name": "mr_td",
            "expiration": "9999-12-31T23:59:59Z",
            "value": ["aa", "bb"],
        }
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["expiration"])

    @pytest.mark.parametrize(
        ("name", "values"), [("a/b", ["x"]), ("ok", []), ("ok", [""]), ("../x", ["y"])]
    )
    def test_bad_reference_values_refused(self, name, values):
        with pytest.raises(ValueError):
            kbs_config.reference_value_files({name: values})

    def test_builtin_policies(self):
        affirming = kbs_config.builtin_policy("resource-affirming.rego")
        assert kbs_config.rego_problem(affirming, "policy") is None
        assert 'submod["ear.status"] == "affirming"' in affirming
        assert "count(input.submods) > 0" in affirming
        assert "default allow := false" in affirming

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("", "is empty"),
            ("# only a comment\n", "is empty"),
            ("allow := true\n", "no package line"),
            ("package agent_policy\nallow := true\n", "declares package 'agent_policy'"),
        ],
    )
    def test_rego_problems(self, text, problem):
        assert problem in (kbs_config.rego_problem(text, "policy") or "")

    def test_rego_accepted(self):
        assert kbs_config.rego_problem("# c\npackage policy\n", "policy") is None
        assert kbs_config.rego_problem("package policy # ours\nallow := true\n", "policy") is None


def _config(env: str, **kbs: Any) -> dict[str, Any]:
    return {
        "coco:environment": env,
        "coco:cluster": {"provider": "existing"},
        "coco:nodePools": [
            {"name": "p", "tee": "snp", "mode": "bare-metal", "nodeSelector": {"a": "b"}}
        ],
        "coco:kbs": kbs,
    }


def _errors(config: dict[str, Any], base: str = str(ROOT)) -> list[str]:
    try:
        validate(config, stack="t", secure_paths=frozenset(), base_dir=base)
    except SpecError as exc:
        return [f"{i.path}: {i.message}" for i in exc.issues]
    return []


class TestRules:
    def test_production_refuses_allow_all_and_insecure_http(self):
        errors = _errors(_config("production", resourcePolicy="allow-all", insecureHttp=True))
        assert any(e.startswith("coco:kbs.resourcePolicy:") for e in errors)
        assert any(e.startswith("coco:kbs.insecureHttp:") for e in errors)
        assert _errors(_config("dev", resourcePolicy="allow-all", insecureHttp=True)) == []

    def test_user_policy_files_checked(self, tmp_path):
        (tmp_path / "empty.rego").write_text("")
        (tmp_path / "wrong.rego").write_text("package agent_policy\ndefault allow := true\n")
        (tmp_path / "good.rego").write_text("package policy\ndefault allow := false\n")
        errors = _errors(
            _config("dev", resourcePolicy="empty.rego", attestationPolicy="wrong.rego"),
            str(tmp_path),
        )
        assert any(
            "coco:kbs.resourcePolicy: policy file 'empty.rego' is empty" in e for e in errors
        )
        assert any("coco:kbs.attestationPolicy:" in e and "agent_policy" in e for e in errors)
        assert (
            _errors(
                _config("dev", resourcePolicy="good.rego", attestationPolicy="good.rego"),
                str(tmp_path),
            )
            == []
        )

    def test_storage_fields(self):
        assert _errors(_config("dev", storageSize="10Gi", storageClass="fast-ssd")) == []
        errors = _errors(_config("dev", storageSize="10GB"))
        assert any(e.startswith("coco:kbs.storageSize") for e in errors)


class TestSeedScript:
    """The init container's script, run for real with /bin/sh against a temporary store:
    copies are writable by the KBS (the seeds are mounted read-only 0440), a second start works,
    and a seed removed from the stack disappears from the store."""

    def _run(self, tmp_path, seeds):
        import stat
        import subprocess

        seed_root = tmp_path / "seed"
        if seed_root.exists():
            import shutil

            shutil.rmtree(seed_root)
        for rel, text in seeds.items():
            f = seed_root / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
            f.chmod(0o440)
        script = kbs_config.seed_script().replace(
            kbs_config.STORAGE_DIR, str(tmp_path / "store")
        ).replace("/seed/", f"{seed_root}/")
        subprocess.run(["/bin/sh", "-c", script], check=True)
        return stat

    def test_writable_rerunnable_and_pruned(self, tmp_path):
        name = kbs_config.local_fs_name("default/key/1")
        stat = self._run(tmp_path, {f"repository/{name}": "one", "kbs/resource-policy.rego": "p"})
        stored = tmp_path / "store" / "repository" / name
        assert stored.read_text() == "one"
        assert stat.S_IMODE(stored.stat().st_mode) == 0o640
        # second start with a changed value: overwrites the (now writable) copy
        self._run(tmp_path, {f"repository/{name}": "two", "kbs/resource-policy.rego": "p"})
        assert stored.read_text() == "two"
        # the resource is removed from the stack: its copy goes too, the policy stays
        self._run(tmp_path, {"kbs/resource-policy.rego": "p"})
        assert not stored.exists()
        assert (tmp_path / "store" / "kbs" / "resource-policy.rego").read_text() == "p"


class TestReferenceValueTypes:
    """Numbers stay numbers and scalars stay scalars in what the RVPS stores."""

    def test_types_kept(self):
        import json

        record = json.loads(kbs_config.reference_value_record("snp_tee_svn", [3, 3, 4]))
        assert record["value"] == [3, 4]
        scalar = json.loads(kbs_config.reference_value_record("major_version", 1))
        assert scalar["value"] == 1

    def test_shape_follows_how_the_default_policy_compares(self):
        import json

        def stored(name, value):
            return json.loads(kbs_config.reference_value_record(name, value))["value"]

        # `in` names: a single value is still a list, or `x in "abc"` never matches
        assert stored("snp_launch_measurement", "ab" * 48) == ["ab" * 48]
        assert stored("snp_bootloader", 3) == [3]
        # `==` names: a one-item list is that value, or `x == [true]` never matches
        assert stored("snp_smt_enabled", [True]) is True
        assert stored("tdvfkernel", ["cd"]) == "cd"
        assert kbs_config.reference_value_problem("snp_smt_enabled", [True, False]) is not None
        assert kbs_config.reference_value_problem("snp_smt_enabled", [True, True]) is None
        assert kbs_config.reference_value_problem("snp_bootloader", [1, 2]) is None


class TestUrl:
    """Guests outside the cluster get the host name the certificate covers, whatever the
    Service type; without one, the in-cluster name."""

    @pytest.mark.parametrize("expose,url", [
        ("ingress", "https://kbs.example.com"),
        ("loadbalancer", "https://kbs.example.com:8080"),
        ("nodeport", "https://kbs.example.com:30443"),
    ])
    def test_hostname_wins(self, expose, url):
        from components.kbs.broker import kbs_url
        from spec.model import Kbs

        spec = {"expose": expose, "hostname": "kbs.example.com", "nodePort": 30443}
        assert kbs_url(Kbs.model_validate(spec)) == url

    def test_cluster_name_without_hostname(self):
        from components.kbs.broker import kbs_url
        from spec.model import Kbs

        assert kbs_url(Kbs.model_validate({})) == (
            "https://kbs.coco-kbs.svc.cluster.local:8080")
