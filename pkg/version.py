"""The version pyistio reports: to proxies (ISTIO_VERSION metadata), on /version, in syncz.

It follows Istio's version scheme so tools that gate on a minimum Istio version keep working;
the suffix says which control plane produced it.
"""

from __future__ import annotations

from typing import Final

VERSION: Final = "1.28.0-pyistio"
