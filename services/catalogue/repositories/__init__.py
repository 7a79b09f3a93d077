"""Every database query of the catalogue lives in one of these modules."""
