"""Cross-object configuration analysis with Istio's message codes (`istioctl analyze`).

Shared by istioctl and istiod: `messages` (the catalogue and Istio's string form), `resource`
(what is analyzed and where it came from), `loader` (documents → resources), `inputs` (the
indexed snapshot analyzers read), `analyzers/` (one module per family), `runner` (run, filter,
sort) and `output` (log, json and yaml renderings).
"""
