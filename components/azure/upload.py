"""`python -m components.azure.upload`: upload a fixed VHD to Azure Storage as a page blob.

Run by components.azure.image during `pulumi up` (a pulumi_command local.Command); the storage
account key arrives in the AZURE_STORAGE_KEY environment variable (a Pulumi secret), never on
the command line. Page blobs hold whole 512-byte pages, which a fixed VHD always is (its size is
MiB-aligned, images/disk.py). Non-goals: resuming partial uploads, other blob types.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.azure.upload")
    parser.add_argument("--account-url", required=True)
    parser.add_argument("--container", required=True)
    parser.add_argument("--blob", required=True)
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    key = os.environ.get("AZURE_STORAGE_KEY", "")
    if not key:
        print("error: AZURE_STORAGE_KEY is not set", file=sys.stderr)
        return 2
    size = args.file.stat().st_size
    if size % 512:
        print(f"error: {args.file} is {size} bytes, not whole 512-byte pages", file=sys.stderr)
        return 2
    from azure.storage.blob import BlobClient, BlobType

    client = BlobClient(args.account_url, args.container, args.blob, credential=key)
    with args.file.open("rb") as data:
        client.upload_blob(
            data, length=size, blob_type=BlobType.PAGEBLOB, overwrite=True, max_concurrency=8
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
