"""How `__main__.py` serves COMPONENTS: Pulumi's `component_provider_host`, whose inferred schema
gets one Go option added.

Why the option: the schema's `resources` input of KeyBroker is a plain list of KbsResource, a type
no input uses directly. Pulumi's Go generator (pkg/v3 codegen/go, v3.274.0:
`populateDetailsForTypes` marks an object type as an input only where a property uses it directly,
not through a plain array) then emits `KeyBrokerArgs.Resources []KbsResourceArgs` without ever
defining KbsResourceArgs, and the generated Go SDK does not compile ("undefined:
KbsResourceArgs"; seen with `pulumi package add` and a Go program,
tests/e2e/test_other_language.py). `generateExtraInputTypes` (a `language.go` schema option of
that generator, GoPackageInfo) makes it define the input types of every object type. The other
languages are unaffected.

How: `component_provider_host` (pulumi 3.272.0, provider/experimental/host.py) builds its
provider from the name `ComponentProvider` of its own module and takes no schema hook, so that
name is pointed at GoReadyComponentProvider, a subclass that amends the schema it inferred.
"""

from __future__ import annotations

import json
from typing import Any

from .exported import COMPONENTS, PACKAGE

GO_LANGUAGE_OPTIONS = {"generateExtraInputTypes": True}


def schema_with_options(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with GO_LANGUAGE_OPTIONS merged into its `language.go` (a copy)."""
    language = {k: dict(v) for k, v in schema.get("language", {}).items()}
    language["go"] = {**language.get("go", {}), **GO_LANGUAGE_OPTIONS}
    return {**schema, "language": language}


def serve(version: str) -> None:
    """Serve COMPONENTS with `component_provider_host` and the amended schema."""
    from pulumi.provider import experimental
    from pulumi.provider.experimental import host
    from pulumi.provider.experimental.component import ComponentProvider

    class GoReadyComponentProvider(ComponentProvider):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.schema = json.dumps(schema_with_options(json.loads(self.schema or "{}")))

    host.ComponentProvider = GoReadyComponentProvider  # type: ignore[attr-defined]
    experimental.component_provider_host(COMPONENTS, name=PACKAGE, version=version)
