"""mmreweight.models."""
