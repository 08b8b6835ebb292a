"""probkit.smc (under construction)."""
