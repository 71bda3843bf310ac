"""genq: generative-AI work as durable asynchronous jobs."""

__version__ = "0.1.0"
