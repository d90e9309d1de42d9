"""Test helpers shared across the test tree; each module's docstring says what it offers.

The xDS generation helpers:
- `xds`: a fake discovery pipeline (YAML → registry → PushContext → every generator, subscribed
  the way Envoy subscribes) returning decoded Envoy protobufs;
- `consistency`: cross-type checks on one proxy's resources (go-control-plane `Consistent()`);
- `golden`: golden files (proto JSON as YAML, `--update-golden`) and golden case files;
- `envoy_validate`: `envoy --mode validate` on one proxy's resources;
- `simulate` (+ `simulate_match`): send a simulated call through the generated config.
"""
