"""Synthetic, deterministic demo data for trying Accord without real customers."""
