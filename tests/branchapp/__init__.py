"""An app whose second migration a branch-switch test removes after applying it (copied to a
temporary folder first: the repository's files are never removed)."""
