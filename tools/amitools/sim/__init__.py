"""Simulation: the virtual radio, the attacker, node adapters and the fleet that ties them."""
