"""Smart dispatch: classify incoming 12345 orders by category and suggest where they go."""
