"""Allow `python -m replica`."""

from replica.cli.main import main

# The guard matters: `audit verify` checks large logs in worker processes started with `spawn`, which import this
# module again (as `__mp_main__`); without it each worker would run the command line anew.
if __name__ == "__main__":
    raise SystemExit(main())
