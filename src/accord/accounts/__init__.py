"""Businesses, tracking sources with write keys, and admin API tokens."""
