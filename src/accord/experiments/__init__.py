"""Campaign experiments: designs, assignment, ad logs, metrics, statistics, gates, reports."""
