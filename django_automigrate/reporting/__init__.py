"""What a run tells the world at its end: logs, signals, metrics, mail."""
