"""coco-stack: one declarative Pulumi stack for a Confidential Containers deployment.

This package holds the stack spec, the TEE catalogue, the pinned upstream versions, the CLI and
the Pulumi components. Importing it does not import Pulumi: only the component modules
(`components.stack` and below) and `cli.render` do, so `coco check` stays fast and the
image builder in `images/` can share the error types without Pulumi installed.
"""
