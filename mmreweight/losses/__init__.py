"""mmreweight.losses."""
