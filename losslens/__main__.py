"""``python -m losslens`` runs the command line."""

from losslens.cli import main

main()
