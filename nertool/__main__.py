"""``python -m nertool``: the same command line as the ``nertool`` script."""
from nertool.cli.app import main

main()
