"""OIDC identity tokens: the issuer's keys (JWKS) and verification into typed claims."""
