"""Password KDF, token hashing, TOTP and secret-at-rest encryption."""
