"""Generator adapters (one module each). The protocol is in :mod:`generators.base`."""
