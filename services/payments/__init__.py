"""Payments: agreements, advance and final payments, budget ledgers, bank confirmations."""
