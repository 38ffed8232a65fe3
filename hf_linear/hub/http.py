"""The HTTP client huggingface_hub talks through, for catching its transport errors (the Hub
unreachable) where a push or a Space upload turns them into one-line errors."""

try:
    import httpx2 as httpx  # the HTTP client of huggingface_hub >= 2
except ImportError:  # huggingface_hub 1.x
    import httpx

TransportError = httpx.TransportError

__all__ = ["TransportError"]
