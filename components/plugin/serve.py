"""The provider `__main__.py` serves: Pulumi's ComponentProvider for COMPONENTS, its inferred
schema with one Go option added.

Why the option: the schema's `resources` input of KeyBroker is a plain list of KbsResource, a type
no input uses directly. Pulumi's Go generator (pkg/v3 codegen/go, v3.274.0:
`populateDetailsForTypes` marks an object type as an input only where a property uses it directly,
not through a plain array) then emits `KeyBrokerArgs.Resources []KbsResourceArgs` without ever
defining KbsResourceArgs, and the generated Go SDK does not compile ("undefined:
KbsResourceArgs"; seen with `pulumi package add` and a Go program,
tests/e2e/test_other_language.py).
`generateExtraInputTypes` (a documented `language.go` schema option) makes it define the input
types of every object type. The other languages are unaffected.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .exported import COMPONENTS, PACKAGE

GO_LANGUAGE_OPTIONS = {"generateExtraInputTypes": True}


def schema_with_options(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with GO_LANGUAGE_OPTIONS merged into its `language.go` (a copy)."""
    language = {k: dict(v) for k, v in schema.get("language", {}).items()}
    language["go"] = {**language.get("go", {}), **GO_LANGUAGE_OPTIONS}
    return {**schema, "language": language}


def serve(version: str) -> None:
    """Serve COMPONENTS as `component_provider_host` does, with the amended schema."""
    from pulumi.provider.experimental.component import ComponentProvider
    from pulumi.provider.server import main

    provider = ComponentProvider(COMPONENTS, PACKAGE, None, version)
    provider.schema = json.dumps(schema_with_options(json.loads(provider.schema or "{}")))
    # as component_provider_host: the arguments after the plugin directory go to the server
    main(provider, sys.argv[1:])
