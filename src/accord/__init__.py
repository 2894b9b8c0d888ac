"""Accord: a consent-first customer data and marketing platform."""

__version__ = "0.1.0"
