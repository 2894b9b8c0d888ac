"""Processing: the pipeline over inbox chunks and the job scheduler for periodic work."""
