"""The verification log's cryptography: the hash chain and the operator's signatures (pure; no catalog)."""
