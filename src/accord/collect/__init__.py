"""Segment-compatible collection: validation, consent gate, durable inbox, importers."""
