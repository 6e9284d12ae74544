"""``python -m qpcore`` is ``qp``."""

from qpcore.cli import main

main()
