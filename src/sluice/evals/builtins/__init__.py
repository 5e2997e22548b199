"""Built-in evaluators; importing this package registers them."""
