"""Identity resolution: identifiers, rules, the identity graph, merges and unmerges."""
