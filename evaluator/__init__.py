"""Streaming 10-fold face-verification evaluation on binconv pair shards."""
