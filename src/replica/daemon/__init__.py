"""`replica daemon`: schedules, the watchdog tick, metrics and signals in one long-running process."""
