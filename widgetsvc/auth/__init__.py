"""Authentication: tokens, passwords, the auth middleware and the /auth resources."""
