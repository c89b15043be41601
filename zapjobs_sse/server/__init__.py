"""The dashboard server: its live core (live/) and its HTTP surface (http/)."""
