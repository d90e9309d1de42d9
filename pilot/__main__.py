"""`python -m pilot` runs istiod."""

import sys

from pilot.bootstrap.main import main

sys.exit(main())
