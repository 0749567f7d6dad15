-- Review's read model: which advisor holds which application, its status and next deadline.
-- Written by the review workflow's activities together with the events they publish.
CREATE TABLE assignments (
    application_id  uuid        PRIMARY KEY,
    advisor         text        NOT NULL,
    funding_line    text        NOT NULL,
    title           text        NOT NULL,
    requested_minor bigint      NOT NULL,
    currency        text        NOT NULL CHECK (currency IN ('NOK', 'EUR')),
    status          text        NOT NULL,
    next_deadline   timestamptz,
    assigned_at     timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Workload counts and "my applications" both look up open cases per advisor.
CREATE INDEX assignments_advisor_status ON assignments (advisor, status);
CREATE INDEX assignments_status_deadline ON assignments (status, next_deadline);
