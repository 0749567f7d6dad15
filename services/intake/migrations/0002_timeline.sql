-- Every event of every application, as intake saw it on the lifecycle topic: the timeline.
-- One application's events share a partition, so arrival order (seq) is publication order.
CREATE TABLE timeline (
    seq            bigserial   PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE,
    application_id uuid        NOT NULL,
    event_type     text        NOT NULL,
    version        integer     NOT NULL,
    occurred_at    timestamptz NOT NULL,
    source         text        NOT NULL,
    actor          text,
    payload        jsonb       NOT NULL
);
CREATE INDEX timeline_application ON timeline (application_id, seq);
