"""Test harness: run a stack's real program under Pulumi mocks and inspect what it registered.

`render_config` / `render_stack` install fresh mocks for each call (cli.render.run calls
pulumi.runtime.set_mocks every time), run the program to completion (outputs awaited, apply
callbacks run: preview=False) and return the recorded resource graph. Assertions then run on
plain recorded data, never inside callbacks that might not run.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pulumi.runtime.mocks
import pytest

from cli import render
from spec import versions

_SET_MOCKS = pulumi.runtime.mocks.set_mocks  # unpatched: renders may be shared

ROOT = Path(__file__).resolve().parent.parent
STACKS = sorted(
    p.name[len("Pulumi.") : -len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
)


def resources_of(result: render.Render, type_: str) -> list[render.Registration]:
    found = [r for r in result.registrations if r.type == type_]
    return sorted(found, key=lambda r: r.name)


def one(result: render.Render, type_: str, name: str | None = None) -> render.Registration:
    found = [r for r in resources_of(result, type_) if name is None or r.name == name]
    assert len(found) == 1, f"expected one {type_} {name or ''}, found {[r.name for r in found]}"
    return found[0]


def kubernetes_version(result: render.Render) -> str:
    version = (
        result.spec.cluster.kubernetes_version if result.spec else versions.KUBERNETES_VERSION
    )
    return version if version.count(".") == 2 else f"{version}.0"


def assert_valid_kubernetes(result: render.Render) -> int:
    """Validate every Kubernetes object the project authors against the targeted Kubernetes
    version's schema (strict: unknown fields fail). Returns how many were checked."""
    import kubernetes_validate

    objects = result.kubernetes_objects()
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, kubernetes_version(result), strict=True)
        except kubernetes_validate.ValidationError as exc:  # pragma: no cover - failure path
            pytest.fail(f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}: {exc}")
    return len(objects)


class _OutputMocks:
    """Wraps the render mocks: `outputs(type, inputs)` may return the state a real provider
    would compute for a resource (None: the default, inputs echoed back)."""

    def __init__(self, inner: Any, outputs: Callable[[str, dict[str, Any]], Any]) -> None:
        self.inner = inner
        self.outputs = outputs

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        state = self.outputs(args.typ, dict(args.inputs))
        if state is None:
            return self.inner.new_resource(args)  # type: ignore[no-any-return]
        return f"{args.name}-id", state

    def call(self, args: Any) -> Any:
        return self.inner.call(args)


def patch_provider_outputs(
    monkeypatch: pytest.MonkeyPatch, outputs: Callable[[str, dict[str, Any]], Any]
) -> None:
    """Make every later render (cli.render.record) use provider-computed outputs."""
    import pulumi.runtime.mocks as mocks

    original = mocks.set_mocks

    def set_mocks(the_mocks: Any, *a: Any, **kw: Any) -> None:
        wrapped = _OutputMocks(the_mocks, outputs)
        if kw.get("monitor") is not None:
            kw["monitor"].mocks = wrapped
        original(wrapped, *a, **kw)

    monkeypatch.setattr(mocks, "set_mocks", set_mocks)


@pytest.fixture
def render_config() -> Callable[..., render.Render]:
    def run(
        config: dict[str, Any], stack: str = "test", secure: frozenset[str] = frozenset()
    ) -> render.Render:
        return render.run(config, stack=stack, secure_paths=secure, project_dir=ROOT)

    return run


def render_program(program: Callable[[], Any], stack: str = "test") -> render.Render:
    """Run any Pulumi program (e.g. one component with test inputs) under fresh mocks."""
    registrations, outputs = render.record(program, stack=stack)
    return render.Render(stack, None, registrations, outputs)


_RENDERS: dict[str, render.Render] = {}


@pytest.fixture
def render_stack() -> Callable[[str], render.Render]:
    """Render a stack of stacks/ under mocks. One render per stack per test process, shared by
    the tests that read it (each gets its own deep copy): sample stacks are rendered by dozens
    of tests. Tests that patch provider outputs get a fresh render; a test that compares two
    renders (determinism) must call render.run_stack itself."""
    import copy

    import pulumi.runtime.mocks as mocks

    def run(stack: str) -> render.Render:
        if mocks.set_mocks is not _SET_MOCKS:  # patch_provider_outputs is active
            return render.run_stack(stack, ROOT)
        if stack not in _RENDERS:
            _RENDERS[stack] = render.run_stack(stack, ROOT)
        return copy.deepcopy(_RENDERS[stack])

    return run


class StaticServer:
    """Files under `root` over HTTP on loopback (a real server), with the paths asked for."""

    def __init__(self, root: Path) -> None:
        self.root, self.requests = root, list[str]()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(Handler, directory=str(root))
        )
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StaticServer]:
    root = tmp_path / "www"
    root.mkdir()
    served = StaticServer(root)
    yield served
    served.stop()


SLOW_TIERS = ("image", "ssh", "e2e", "integration")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of no slow tier `unit`, so `pytest -m unit` is the quick tier."""
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in SLOW_TIERS):
            item.add_marker(pytest.mark.unit)
