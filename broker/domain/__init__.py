"""Pure rules of the registry: names, versions, credentials and their scopes, documents."""
