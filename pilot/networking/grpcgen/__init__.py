"""Proxyless gRPC: resources for gRPC's own xDS client (Istio's pilot/pkg/networking/grpcgen).

A gRPC client (node metadata `GENERATOR: grpc`) dialing `xds:///HOST:PORT` subscribes top-down
with explicit names: LDS `HOST:PORT` → RDS → CDS → EDS. It gets
- LDS (`listeners.py`): one ApiListener per requested `HOST:PORT` whose host names a service
  of its scope (short names expanded as Istio's tryFindFQDN), an HttpConnectionManager with the
  fault and router filters that fetches RDS `outbound|PORT||FQDN`;
- RDS (`routes.py`): the sidecar virtual hosts of that port, cut down to the one service,
  with domains carrying the port (gRPC matches `HOST:PORT`) and timeouts as max stream
  durations;
- CDS (`clusters.py`): the requested default and subset clusters, all EDS over ADS, with the
  parts of the DestinationRule gRPC implements (load balancer, max requests);
- EDS: the ordinary load assignments; every locality group has a weight and a `locality`
  message, both of which gRPC requires.
"""
