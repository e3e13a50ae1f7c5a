"""Telling the outside world about runs: dead-man pings that fail soft and never hide the job's own outcome."""
