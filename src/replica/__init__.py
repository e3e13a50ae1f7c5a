"""replica: backup replication and restore verification on top of restic and S3."""

__version__ = "0.1.0"
