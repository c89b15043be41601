"""The HTTP surface: event stream, JSON API, pages, authentication, probes."""
