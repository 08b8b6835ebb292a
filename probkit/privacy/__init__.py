"""probkit.privacy (under construction)."""
