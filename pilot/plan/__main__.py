"""`python -m pilot.plan`: see pilot/plan/offline.py."""

import sys

from pilot.plan.offline import main

sys.exit(main())
