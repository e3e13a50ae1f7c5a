"""Pure decisions: objectives (RPO/RTO verdicts) and retention. Data in, verdict and reasons out."""
