-- How to reach an application's contact. Personal data: kept here, never logged.
CREATE TABLE contacts (
    application_id uuid PRIMARY KEY,
    first_name     text    NOT NULL,
    full_name      text    NOT NULL,
    email          text    NOT NULL,
    phone          text    NOT NULL,
    language       text    NOT NULL CHECK (language IN ('nb', 'en', 'ru')),
    sms_opt_out    boolean NOT NULL DEFAULT false
);

-- One row per message to send: the unique key is what makes "never twice" hold under
-- redelivery, restarts and several instances.
CREATE TABLE deliveries (
    id             bigserial   PRIMARY KEY,
    application_id uuid        NOT NULL REFERENCES contacts (application_id),
    milestone      text        NOT NULL,
    channel        text        NOT NULL CHECK (channel IN ('email', 'sms')),
    language       text        NOT NULL,
    status         text        NOT NULL DEFAULT 'pending'
                               CHECK (status IN ('pending', 'sent', 'failed')),
    attempts       integer     NOT NULL DEFAULT 0,
    last_error     text,
    event_id       uuid        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz,
    UNIQUE (application_id, milestone, channel)
);
CREATE INDEX deliveries_pending ON deliveries (created_at) WHERE status = 'pending';
CREATE INDEX deliveries_created ON deliveries (created_at DESC, id);
