"""mmreweight.datasets."""
