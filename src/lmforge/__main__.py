"""``python -m lmforge <subcommand>``: the same as the ``lmforge`` command."""

from lmforge.cli.main import main

if __name__ == "__main__":
    main()
