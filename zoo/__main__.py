"""`python -m zoo`, as `torchrun -m zoo` needs."""

from zoo.cli import main

main()
