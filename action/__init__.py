"""stagegate-action: a GitHub Action that stages an npm package through a stagegate broker."""
