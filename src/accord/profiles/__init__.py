"""Profiles: identifiers, traits and the events that built them."""
