"""Leads: forms, landing pages, double opt-in, lead magnets, imports."""
