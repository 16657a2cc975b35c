"""The HTTP layer: one module per route family; handlers call domain rules and store queries."""
