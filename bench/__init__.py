"""Hand-run benchmarks: stagegate side by side with Verdaccio, and the OIDC exchange's own floor."""
