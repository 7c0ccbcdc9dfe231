"""What handlers need from the outside world, as protocols; adapters implement them."""
