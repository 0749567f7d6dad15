-- The W3C trace context (`traceparent`) of the span that wrote each outbox row, so the
-- relay can continue the trace on Kafka (sent as the message's `traceparent` header).
-- NULL when nothing was being traced.
ALTER TABLE outbox ADD COLUMN traceparent text;
