"""probkit.dmcmc (under construction)."""
