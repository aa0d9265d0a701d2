"""The guest-image builder (reproducible, measured guest images).

Usable without Pulumi: `coco image build RECIPE --out DIR` and the GuestImage component both call
into this package. The builder itself arrives with the guest-image issue; this package exists so
the layout, packaging and the no-Pulumi import rule are in place and tested from the start.
"""
