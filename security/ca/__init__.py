"""istiod's certificate authority: root storage and rotation, signing, workload credentials."""
