"""User administration (docs/API.md §8.5)."""
