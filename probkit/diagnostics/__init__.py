"""probkit.diagnostics (under construction)."""
