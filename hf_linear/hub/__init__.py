"""Sharing on the Hugging Face Hub: `push` (`hf-linear push`: upload a checkpoint in one
commit), `verification` (what a checkpoint holds and the checks before any upload), `card` (the
model card), and `server` (a local Hub-API server for working without internet)."""
