"""`make bench`: Lethe's speed at scale, measured against the fakes on loopback."""
