"""Cross-cutting basics: settings, identifiers, clock and typed errors."""
