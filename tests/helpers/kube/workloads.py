"""Services, EndpointSlices, Pods and Nodes shaped as a real API server returns them.

Field for field what `kubectl get svc,endpointslice,pod,node -o json` prints on a recent
cluster (Kubernetes API reference: core/v1 Service, Pod, Node; discovery/v1 EndpointSlice):
managedFields, status, clusterIPs, ipFamilies, ipFamilyPolicy, internalTrafficPolicy,
sessionAffinity, the slice endpoints' nodeName/zone/hints, a pod's volumes, container
statuses, tolerations and so on — most of which pyistio ignores but must not choke on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Obj = dict[str, Any]
STAMP = "2026-11-22T09:00:00Z"


def _meta(name: str, ns: str | None, labels: Mapping[str, str], uid: str, **extra: Any) -> Obj:
    meta: Obj = {
        "name": name,
        "uid": uid,
        "resourceVersion": "1001",
        "creationTimestamp": STAMP,
        "labels": dict(labels),
        "managedFields": [
            {
                "manager": "kube-controller-manager",
                "operation": "Update",
                "apiVersion": "v1",
                "time": STAMP,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}},
            }
        ],
        **extra,
    }
    if ns is not None:
        meta["namespace"] = ns
    return meta


def service(
    name: str,
    ns: str,
    ports: Sequence[tuple[str, int, int | str]],
    *,
    cluster_ip: str = "10.96.0.10",
    selector: Mapping[str, str] | None = None,
) -> Obj:
    """A ClusterIP Service (cluster_ip "None": headless); ports are (name, port, targetPort)."""
    spec: Obj = {
        "ports": [{"name": n, "protocol": "TCP", "port": p, "targetPort": t} for n, p, t in ports],
        "selector": dict(selector or {"app": name}),
        "clusterIP": cluster_ip,
        "clusterIPs": [cluster_ip],
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "internalTrafficPolicy": "Cluster",
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(
            name,
            ns,
            {"app": name},
            f"svc-{ns}-{name}",
            annotations={
                "kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"v1"}\n'
            },
        ),
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


def slice_endpoint(
    ip: str,
    pod: str | None,
    ns: str,
    *,
    ready: bool = True,
    terminating: bool = False,
    node: str = "node-a",
    zone: str = "",
) -> Obj:
    ep: Obj = {
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": ready, "terminating": terminating},
        "nodeName": node,
    }
    if pod is not None:
        ep["targetRef"] = {"kind": "Pod", "namespace": ns, "name": pod, "uid": f"pod-{pod}"}
    if zone:
        ep["zone"] = zone
        ep["hints"] = {"forZones": [{"name": zone}]}
    return ep


def endpoint_slice(
    service_name: str, ns: str, ports: Sequence[tuple[str, int]], endpoints: Sequence[Obj]
) -> Obj:
    name = f"{service_name}-abcde"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": _meta(
            name,
            ns,
            {
                "kubernetes.io/service-name": service_name,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            f"eps-{ns}-{name}",
            generateName=f"{service_name}-",
            annotations={"endpoints.kubernetes.io/last-change-trigger-time": STAMP},
            ownerReferences=[
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": service_name,
                    "uid": f"svc-{ns}-{service_name}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        ),
        "addressType": "IPv4",
        "endpoints": list(endpoints),
        "ports": [{"name": n, "protocol": "TCP", "port": p} for n, p in ports],
    }


def pod(
    name: str,
    ns: str,
    ip: str,
    labels: Mapping[str, str],
    *,
    service_account: str = "default",
    node: str = "node-a",
    ready: bool = True,
    ports: Sequence[tuple[str, int]] = (),
    deployment: str = "",
) -> Obj:
    """A Running pod (Ready when `ready`); of a Deployment's ReplicaSet when `deployment`."""
    extra: Obj = {"annotations": {"kubectl.kubernetes.io/restartedAt": STAMP}}
    labels = dict(labels)
    if deployment:
        labels["pod-template-hash"] = "7d4b9c8f5"
        extra["generateName"] = f"{deployment}-7d4b9c8f5-"
        extra["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": f"{deployment}-7d4b9c8f5",
                "uid": f"rs-{deployment}",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    status = "True" if ready else "False"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(name, ns, labels, f"pod-{name}", **extra),
        "spec": {
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420}}],
            "containers": [
                {
                    "name": "app",
                    "image": "docker.io/istio/examples-bookinfo-reviews-v1:1.20.2",
                    "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports],
                    "resources": {"requests": {"cpu": "10m"}},
                    "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run"}],
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"runAsUser": 1000},
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": service_account,
            "serviceAccount": service_account,
            "nodeName": node,
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True"},
                {"type": "Initialized", "status": "True", "lastTransitionTime": STAMP},
                {"type": "Ready", "status": status, "lastTransitionTime": STAMP},
                {"type": "ContainersReady", "status": status, "lastTransitionTime": STAMP},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": STAMP},
            ],
            "hostIP": "172.18.0.2",
            "hostIPs": [{"ip": "172.18.0.2"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": STAMP,
            "containerStatuses": [
                {
                    "name": "app",
                    "state": {"running": {"startedAt": STAMP}},
                    "lastState": {},
                    "ready": ready,
                    "restartCount": 0,
                    "image": "docker.io/istio/examples-bookinfo-reviews-v1:1.20.2",
                    "imageID": "docker.io/istio/examples@sha256:abc",
                    "containerID": "containerd://abc",
                    "started": True,
                }
            ],
            "qosClass": "Burstable",
        },
    }


def node(name: str, region: str = "", zone: str = "", subzone: str = "") -> Obj:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node-role.kubernetes.io/worker": "",
    }
    for key, value in (
        ("topology.kubernetes.io/region", region),
        ("topology.kubernetes.io/zone", zone),
        ("topology.istio.io/subzone", subzone),
    ):
        if value:
            labels[key] = value
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _meta(
            name,
            None,
            labels,
            f"node-{name}",
            annotations={"node.alpha.kubernetes.io/ttl": "0"},
        ),
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "0f1e2d3c",
                "systemUUID": "4b5a6978",
                "bootID": "8c7d6e5f",
                "kernelVersion": "6.8.0",
                "osImage": "Debian GNU/Linux 12",
                "containerRuntimeVersion": "containerd://1.7.18",
                "kubeletVersion": "v1.31.0",
                "kubeProxyVersion": "v1.31.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": [{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 320368}],
        },
    }
