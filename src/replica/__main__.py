"""Allow `python -m replica`."""

from replica.cli.main import main

raise SystemExit(main())
