"""``python -m edgecnn.demo [-o DIR] [--json] ...`` (what ``make demo`` runs): the same as ``edgecnn demo``."""

import sys

from edgecnn.cli import main

main(["demo", *sys.argv[1:]])
