"""Processing: the pipeline that takes the inbox through every context, in order."""
