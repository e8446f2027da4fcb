"""Demo scenarios: the fleet demo and the command, lifecycle and key-theft campaigns."""
