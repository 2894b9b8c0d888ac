"""Audiences: condition trees, their two evaluators, suppression and activation."""
