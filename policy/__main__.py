"""Entry point of the coco-stack policy pack: builds the PolicyPack, which starts the analyzer
server the Pulumi CLI talks to. Nothing else lives here; the policies are in coco_policies.py so
tests can import them without starting a server.

Enforcement for every policy comes from the stack's `coco:environment` (the engine passes the
stack config to the pack as PULUMI_CONFIG): mandatory for production, advisory otherwise and when
no stack config is available.
"""

import os

from coco_policies import POLICIES, enforcement_level, environment_from
from pulumi_policy import PolicyPack

PolicyPack(
    name="coco-stack",
    policies=POLICIES,
    enforcement_level=enforcement_level(environment_from(os.environ)),
    description="Confidential Containers guardrails for coco-stack",
)
