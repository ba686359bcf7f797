"""``python -m tarry._cli_main``: the tarry command without its console script."""

from tarry._cli import main

main()
