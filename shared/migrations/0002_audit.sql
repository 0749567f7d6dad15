-- Refused requests and commands (401/403, unauthorised Kafka commands), per service.
CREATE TABLE audit_refusals (
    id         bigserial   PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    channel    text        NOT NULL CHECK (channel IN ('http', 'kafka')),
    target     text        NOT NULL,
    subject    text,
    role       text,
    reason     text        NOT NULL
);
CREATE INDEX audit_refusals_at ON audit_refusals (at DESC);
