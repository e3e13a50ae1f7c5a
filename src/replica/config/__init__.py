"""The files users write: job and policy YAML, validated into pydantic models."""
