"""userdesk: a self-hosted user administration server."""

__version__ = "0.1.0"
