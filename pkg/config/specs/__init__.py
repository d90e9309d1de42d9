"""Typed specs of every kind pyistio reads, derived mechanically from Istio's protos.

Class names are the proto message names, field names the snake_case proto field names (a
Python keyword gets a trailing underscore: `from_`); the YAML/JSON name is the proto JSON name.
`repeated` fields are tuples, maps are string-keyed mappings, messages, oneof members and
wrapper types are `T | None`, enums are StrEnums valued by the proto enum names, and
google.protobuf.Duration is `pkg.config.types.Duration`.

Modules: `networking` (re-exporting `virtual_service`, `destination_rule`, `gateway`,
`service_entry`, `workload_entry`, `sidecar`, `envoy_filter`, `proxy_config`), `security`,
`telemetry`, `extensions`, and `kube` for the Kubernetes documents.
"""
