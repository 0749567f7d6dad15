-- Payments to grantees: one row per attempt to pay a payment (reference) through the bank/ERP.
-- A rejected attempt (wrong bank details) is followed by a new attempt of the same reference;
-- the bank's answer settles an attempt once: requested -> confirmed | rejected, never back.
-- Money is integer minor units with its currency; never floats.

CREATE TABLE payments (
    reference        text        NOT NULL CHECK (reference ~ '^[A-Z0-9-]{6,35}$'),
    attempt          integer     NOT NULL CHECK (attempt >= 1),
    application_id   uuid        NOT NULL,
    correlation_id   uuid        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('advance', 'final', 'installment')),
    amount_minor     bigint      NOT NULL CHECK (amount_minor > 0),
    currency         text        NOT NULL CHECK (currency IN ('NOK', 'EUR')),
    funding_line     text        NOT NULL,
    year             integer     NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    -- Who is paid: the organisation; its account details live in the bank/ERP.
    payee_name       text        NOT NULL,
    payee_org_number text        NOT NULL,
    status           text        NOT NULL DEFAULT 'requested'
                                 CHECK (status IN ('requested', 'confirmed', 'rejected')),
    requested_at     timestamptz NOT NULL DEFAULT now(),
    answered_at      timestamptz,
    -- The bank's reason (a rejection's, usually).
    reason           text,
    -- When finance was alerted that the bank had not confirmed in time.
    alerted_at       timestamptz,
    PRIMARY KEY (reference, attempt),
    CHECK ((status = 'requested') = (answered_at IS NULL))
);
-- A payment is paid once: at most one confirmed attempt per reference.
CREATE UNIQUE INDEX payments_confirmed_once ON payments (reference) WHERE status = 'confirmed';
CREATE INDEX payments_application ON payments (application_id, requested_at);
CREATE INDEX payments_status ON payments (status, requested_at);
CREATE INDEX payments_alerts ON payments (alerted_at)
    WHERE alerted_at IS NOT NULL AND status = 'requested';

-- What was asked of the bank never changes; an answer is final; payments are never deleted.
CREATE FUNCTION payments_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'payments are never deleted';
    END IF;
    IF (NEW.reference, NEW.attempt, NEW.application_id, NEW.correlation_id, NEW.kind,
        NEW.amount_minor, NEW.currency, NEW.funding_line, NEW.year, NEW.payee_name,
        NEW.payee_org_number, NEW.requested_at)
       IS DISTINCT FROM
       (OLD.reference, OLD.attempt, OLD.application_id, OLD.correlation_id, OLD.kind,
        OLD.amount_minor, OLD.currency, OLD.funding_line, OLD.year, OLD.payee_name,
        OLD.payee_org_number, OLD.requested_at) THEN
        RAISE EXCEPTION 'a payment request never changes once made';
    END IF;
    IF OLD.status <> 'requested'
       AND (NEW.status, NEW.answered_at, NEW.reason)
           IS DISTINCT FROM (OLD.status, OLD.answered_at, OLD.reason) THEN
        RAISE EXCEPTION 'payment % attempt % was answered already (%)',
            OLD.reference, OLD.attempt, OLD.status;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER payments_fixed BEFORE UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION payments_fixed();
