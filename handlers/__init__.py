"""Pure reaction logic: each handler consumes its events, writes the store through ports, publishes facts."""
