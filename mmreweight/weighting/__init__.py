"""mmreweight.weighting."""
