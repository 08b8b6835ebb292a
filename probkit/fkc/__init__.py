"""probkit.fkc (under construction)."""
