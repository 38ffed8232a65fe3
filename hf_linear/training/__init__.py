"""Training from declarative YAML configs with `transformers.Trainer`."""
