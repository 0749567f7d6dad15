-- Sending: each delivery carries what its message is rendered from, and the sender's state.
ALTER TABLE deliveries
    -- Which template renders it (the milestone key without its per-occurrence suffix).
    ADD COLUMN template        text,
    -- The event facts the template needs (amounts, dates, reasons), as JSON.
    ADD COLUMN context         jsonb,
    -- When the sender may (re)try it.
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- While `sending`: the claim's lease. A sender that died mid-send leaves a lease that
    -- expires, and the delivery is tried again.
    ADD COLUMN claimed_until   timestamptz,
    -- The provider's id of what was sent (Message-ID, or the SMS provider's message sid).
    ADD COLUMN provider_id     text,
    ADD COLUMN updated_at      timestamptz NOT NULL DEFAULT now();

ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed'));

-- Rows recorded before sending existed hold no message content to render: they are closed
-- as failed with the reason rather than left pending for ever.
UPDATE deliveries
   SET status = 'failed',
       last_error = 'recorded before sending existed: no message content stored, not sent',
       updated_at = now()
 WHERE status = 'pending' AND context IS NULL;

ALTER TABLE deliveries ADD CONSTRAINT deliveries_renderable
    CHECK (status = 'failed' OR (template IS NOT NULL AND context IS NOT NULL));

DROP INDEX deliveries_pending;
-- What the sender scans: due pending rows and expired leases.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_application ON deliveries (application_id);

-- Wake the senders (every instance listens) when deliveries are recorded.
CREATE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_deliveries', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify();
