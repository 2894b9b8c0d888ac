"""Subject rights: a person's data exported, or erased for good, across every context."""
