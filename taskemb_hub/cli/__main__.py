"""`python -m taskemb_hub.cli`: the `taskemb-hub` command."""

import sys

from . import main

sys.exit(main())
