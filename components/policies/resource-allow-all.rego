# coco-stack "allow-all" KBS resource policy: releases every resource to any requester holding
# a valid attestation token, whatever the attestation result. Development only: `coco check`
# refuses it in production and warns elsewhere.
package policy

import rego.v1

default allow := true
