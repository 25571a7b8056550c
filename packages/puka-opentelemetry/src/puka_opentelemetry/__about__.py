"""Version of the puka-opentelemetry package."""

__version__ = "0.1.0"
