"""``python -m ganaug ...`` is the ``ganaug`` command."""

from ganaug.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
