"""istiod's admission webhooks: /validate and /inject (AdmissionReview v1), and keeping the
webhook configurations' caBundle current."""
