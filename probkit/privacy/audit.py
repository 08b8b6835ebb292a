"""Privacy audits (being written by helper B; see /work/notes/privacy_helpers.md)."""
