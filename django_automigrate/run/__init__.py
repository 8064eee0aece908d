"""The run session: plan → lock → apply → record → report, one database at a time."""
