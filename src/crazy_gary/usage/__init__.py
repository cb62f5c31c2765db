"""Who used what: tokens counted per key and endpoint, their share of each endpoint's cost, quotas."""
