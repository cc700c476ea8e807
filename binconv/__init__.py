"""binconv: legacy face-verification .bin files to WebDataset pair shards."""

__version__ = "0.1.0"
