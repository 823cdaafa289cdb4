"""``python -m cvpipe`` (what ``torchrun -m cvpipe train ...`` runs)."""

import sys

from cvpipe.cli import main

sys.exit(main())
