"""When work is due: schedule expressions, and the due decision shared by the daemon and `run-due`."""
