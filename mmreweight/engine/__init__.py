"""mmreweight.engine."""
