"""`istioctl proxy-status`: which proxies istiod serves and, per xDS type, whether each took
what it was sent (SYNCED / NOT SENT / STALE / ERROR with Envoy's NACK message).

Modules, one concern each: `model` reads istiod's answer (HTTP `/debug/syncz`, or
`istio.io/debug/syncz` over ADS) into per-proxy statuses, `table` renders istioctl's table,
`sources` talks to istiod and Envoy, `compare` diffs istiod's view of one proxy against the
proxy's own config dump, and `command` wires the argparse subcommand.
"""
