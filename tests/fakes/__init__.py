"""In-memory stand-ins for the kernel and other outside parts, for tests without root."""
