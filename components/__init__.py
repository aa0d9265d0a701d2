"""coco-stack: one declarative Pulumi stack for a Confidential Containers deployment.

This package holds the Pulumi component resources (docs/architecture.md, "Source tree"); the
stack's spec lives in `spec/`, the command line in `cli/`. Importing the package itself does
not import Pulumi: the component modules do.
"""
