"""The four Barents Grants services; each depends on `shared`, never on another service."""
