"""`python -m lmbench` runs the CLI."""

from lmbench.cli import main

main()
