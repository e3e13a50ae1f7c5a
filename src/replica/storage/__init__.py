"""Object storage reached directly with boto3 (probes, fingerprint sidecars). restic reaches it on its own."""
