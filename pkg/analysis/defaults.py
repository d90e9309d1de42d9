"""Resources istioctl assumes when it analyzes files only (Istio's AddDefaultResources): the
default ingress gateway — a pod labelled `istio: ingressgateway` and its Service — in the
Istio namespace, so Gateways using the default selector are not reported as selecting nothing.
"""

from __future__ import annotations

from pkg.analysis.loader import Loaded, load_text

SOURCE = "internal-ingress"
INGRESS_SERVICE = "istio-ingressgateway"

_TEMPLATE = """\
apiVersion: v1
kind: Pod
metadata:
  labels:
    istio: ingressgateway
  name: {service}-dummypod
  namespace: {namespace}
spec:
  containers:
  - name: istio-proxy
---
apiVersion: v1
kind: Service
metadata:
  name: {service}
  namespace: {namespace}
spec:
  ports:
  - {{name: http2, nodePort: 31380, port: 80, protocol: TCP, targetPort: 80}}
  - {{name: https, nodePort: 31390, port: 443, protocol: TCP, targetPort: 443}}
  - {{name: tcp, nodePort: 31400, port: 31400, protocol: TCP, targetPort: 31400}}
  - {{name: tls, nodePort: 31447, port: 15443, protocol: TCP, targetPort: 15443}}
  selector:
    istio: ingressgateway
"""


def default_ingress(namespace: str = "istio-system") -> Loaded:
    text = _TEMPLATE.format(service=INGRESS_SERVICE, namespace=namespace)
    return load_text(text, SOURCE, namespace)
