"""Entry point of the Pulumi program (`pulumi up -s <stack>`); the work is in components/."""

from components.program import main

main()
