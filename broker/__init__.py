"""stagegate broker: an npm-compatible registry with staged publishing and OIDC trust."""
