"""``python -m flashrec.scoring run|once|status`` (see ``flashrec.scoring.cli``)."""

import sys

from flashrec.scoring.cli import main

sys.exit(main())
