"""``python -m collapse``: same as the ``collapse`` command."""
from collapse.cli import main

main()
