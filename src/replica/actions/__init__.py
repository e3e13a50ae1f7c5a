"""What replica does: each action records its run, calls the stores, restic and storage, and returns a result."""
