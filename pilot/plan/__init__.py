"""Planning a config change: what each class of proxies would receive (istioctl x plan)."""
