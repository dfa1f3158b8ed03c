"""User administration (API.md §8.5)."""
