"""`python -m crazy_gary.cli`: the ``crazy-gary`` command."""

from crazy_gary.cli import main

main()
