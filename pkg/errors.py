"""The error hierarchy of pyistio.

MeshError
├── ConfigError          bad input: a document, a flag, a node id (never crashes a server)
├── RegistryError        a service registry cannot answer
├── XdsProtocolError     a client broke the xDS protocol
└── CAError              certificate authority failures
    ├── AuthenticationError
    └── SigningError
"""

from __future__ import annotations


class MeshError(Exception):
    """Base of every error pyistio raises on purpose."""


class ConfigError(MeshError):
    pass


class RegistryError(MeshError):
    pass


class XdsProtocolError(MeshError):
    pass


class CAError(MeshError):
    pass


class AuthenticationError(CAError):
    pass


class SigningError(CAError):
    pass
