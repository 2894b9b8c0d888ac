"""Predictions: purchase and churn likelihood, lifetime value, affinities."""
