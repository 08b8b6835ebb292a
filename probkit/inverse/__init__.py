"""probkit.inverse (under construction)."""
