"""Settings and security helpers shared by the whole registry."""
