"""istiod's CA-facing servers: authenticators and the CSR gRPC service."""
