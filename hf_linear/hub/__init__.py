"""Sharing on the Hugging Face Hub: pushing checkpoints with their cards (`push`, `cards`) and a
local Hub-API server for working without internet (`server`)."""
