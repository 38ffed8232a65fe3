"""Card templates, shipped inside the package as hf_linear.model_cards (see pyproject.toml)."""
