"""zapjobs-sse: a live Server-Sent Events dashboard for ZapJobs-style job schedulers."""

__all__ = ["__version__"]

__version__ = "0.1.0"
