"""Review: screening, advisor assignment, reviews and funding decisions."""
