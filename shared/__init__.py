"""What the four services share: settings, event contracts, Kafka, Postgres, Temporal."""
