"""coco-stack's components for other Pulumi languages (TypeScript, Go, C#, Java, YAML).

Served by Pulumi's Python component provider host (`__main__.py`, `PulumiPlugin.yaml` in this
directory); the schema is inferred from the type annotations in `args.py` and `exported.py`.
Add it to a program with `pulumi package add <checkout>/components/plugin` or
`pulumi package add github.com/<org>/coco-stack.git/components/plugin@<tag>`; see
docs/architecture.md ("Other languages").

Scope: NodePool, Runtime, KeyBroker, GuestImage (components.plugin.exported). Non-goals: the
whole stack as one component, clouds and peer pods (use the coco-stack program for those).
"""

from __future__ import annotations

from .exported import COMPONENTS, PACKAGE, ComponentArgsError

__all__ = ["COMPONENTS", "PACKAGE", "ComponentArgsError"]
