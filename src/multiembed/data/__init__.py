"""Data layer: canonical schema, validation with quarantine, adapters, splits, examples."""
