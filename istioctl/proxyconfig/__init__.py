"""`istioctl proxy-config`: what one Envoy holds (or what istiod would send it), as istioctl
shows it.

Modules, one concern each: `sources` fetches a config dump (Envoy admin, a saved file or
istiod's debug endpoint), `configdump` turns it into Envoy's typed protobufs, `redact` removes
key material, one writer per table (`clusters`, `listeners`, `routes`, `endpoints`, `eds`,
`secrets`, `bootstrap`, `summary` for `all`), `tabwriter` and `render` format them, and
`command` wires the argparse subcommands.
"""
