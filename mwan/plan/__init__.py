"""mwan."""
