"""Wiring and lifecycle: settings from flags and environment, the RouterOS connection factory, and the plugin
process that starts the servers and background loops and stops them within the shutdown budget."""
