"""``python -m nertool.cli``: the command line."""
from nertool.cli.app import main

main()
