"""Metrics, structured logging, health checks and the HTTP endpoint that serves them."""
