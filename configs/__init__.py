"""Training configs, shipped inside the package as hf_linear.configs (see pyproject.toml)."""
