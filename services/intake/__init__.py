"""Intake: takes applications over HTTP and from Kafka, validates and stores them, and starts
one lifecycle workflow per application."""
