"""`istioctl analyze`: cross-object findings with Istio's codes, on files and on a running
istiod (see `command`)."""
