"""The widget resource: collection and item, and their JSON representation."""
