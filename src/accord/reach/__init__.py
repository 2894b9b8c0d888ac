"""Reach: whether a person may be contacted on a channel, and the one suppression list."""
