"""``python -m loader``: see loader/cli.py."""

from loader.cli import main

raise SystemExit(main())
