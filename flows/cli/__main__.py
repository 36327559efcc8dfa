"""``python -m flows.cli``: the lockgate command line."""

from flows.cli import main

main()
