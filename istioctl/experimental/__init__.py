"""`istioctl experimental|x`: commands whose shape may still change (Istio's convention)."""
