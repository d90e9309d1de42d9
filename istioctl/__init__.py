"""istioctl."""
