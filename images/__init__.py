"""The guest-image builder: reproducible, measured, boot-tested guest images.

Usable without Pulumi: `coco image build RECIPE --out DIR` (cli.image) and the GuestImage
component (components/image.py) both run images.build.build_image(). Modules, one concern each:
recipe (TOML recipes), run (the one door to external commands), rootfs (mmdebstrap stages and the
content-addressed cache), initrd, verity, uki, disk (GPT and output formats), measure (PCR and
SNP predictions), boot (the QEMU boot test), build (the pipeline), errors. See docs/images.md.
Importing this package imports nothing else.
"""
