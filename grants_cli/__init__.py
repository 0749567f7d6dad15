"""`grants`: the operators' command-line tool for Barents Grants.

Submit applications, follow them (status, timeline, search), act as advisor, decider or bank
in local development, read payments and ledgers, and tail the events on Kafka. Entry point:
`grants_cli.main:app` (the `grants` console script)."""
