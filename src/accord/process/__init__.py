"""Processing: the pipeline that takes the inbox through every context, in order, and the
job scheduler for periodic and one-off work."""
