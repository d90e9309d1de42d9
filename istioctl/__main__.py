"""`python -m istioctl`."""

import sys

from istioctl.cli import main

sys.exit(main())
