"""How restic is called: argv builders, JSON parsing and the exit-code/error table. No policy lives here."""
