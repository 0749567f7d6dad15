CREATE TABLE applications (
    id                uuid        PRIMARY KEY,
    -- The submitting system's reference: a resubmission with the same reference is the
    -- same application (idempotent), never a second one.
    external_ref      text        NOT NULL UNIQUE,
    funding_line      text        NOT NULL,
    funding_type      text        NOT NULL,
    applicant_country text        NOT NULL,
    currency          text        NOT NULL,
    requested_minor   bigint      NOT NULL CHECK (requested_minor > 0),
    title             text        NOT NULL,
    document          jsonb       NOT NULL,
    document_sha256   text        NOT NULL,
    channel           text        NOT NULL CHECK (channel IN ('http', 'kafka')),
    source            text        NOT NULL,
    correlation_id    uuid        NOT NULL,
    received_at       timestamptz NOT NULL
);
CREATE INDEX applications_received ON applications (received_at DESC, id);
CREATE INDEX applications_line_received ON applications (funding_line, received_at DESC, id);
