"""Request authentication (RequestAuthentication → envoy.filters.http.jwt_authn)."""

from pilot.networking.authn.jwt import jwt_authentication, jwt_http_filters

__all__ = ["jwt_authentication", "jwt_http_filters"]
