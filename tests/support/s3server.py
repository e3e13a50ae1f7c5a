"""moto's S3 server on 127.0.0.1: a real HTTP endpoint that restic (a subprocess) and boto3 both reach."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
from moto.server import ThreadedMotoServer

# moto logs every request through werkzeug; thousands of lines would drown the failures that matter.
logging.getLogger("werkzeug").setLevel(logging.ERROR)

ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "moto-secret-Kq7xZ"  # distinct, so a test can prove it never leaks
REGION = "us-east-1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class S3Server:
    """A running moto server and a boto3 client for it."""

    endpoint_url: str
    server: ThreadedMotoServer

    def client(self):  # type: ignore[no-untyped-def]
        """Return a boto3 S3 client for this endpoint."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def create_bucket(self, name: str) -> None:
        """Create a bucket."""
        self.client().create_bucket(Bucket=name)

    def delete_bucket(self, name: str) -> None:
        """Delete a bucket and everything in it (moto keeps large objects as temp files until then)."""
        client = self.client()
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        client.delete_bucket(Bucket=name)


def start_s3_server() -> Iterator[S3Server]:
    """Yield a started moto S3 server on a free loopback port; stop it afterwards."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}", server)
    finally:
        server.stop()
