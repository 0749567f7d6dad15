-- Budget ledgers: one per funding line and year, and the commitments made against them.
-- Money is integer minor units (øre, cents) with its currency; never floats.

-- Totals are cumulative: `committed` counts every commitment ever made, `released` what
-- lapsed grants (and later, unspent remainders) gave back, `disbursed` what was paid out of
-- outstanding commitments. What can still be committed is `budget - (committed - released)`.
CREATE TABLE budget_ledgers (
    funding_line    text        NOT NULL,
    year            integer     NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    currency        text        NOT NULL CHECK (currency IN ('NOK', 'EUR')),
    budget_minor    bigint      NOT NULL CHECK (budget_minor >= 0),
    committed_minor bigint      NOT NULL DEFAULT 0 CHECK (committed_minor >= 0),
    disbursed_minor bigint      NOT NULL DEFAULT 0 CHECK (disbursed_minor >= 0),
    released_minor  bigint      NOT NULL DEFAULT 0 CHECK (released_minor >= 0),
    -- Derived, so it can never disagree with the totals it comes from.
    available_minor bigint      GENERATED ALWAYS AS
                                (budget_minor - committed_minor + released_minor) STORED,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (funding_line, year),
    CONSTRAINT released_within_committed CHECK (released_minor <= committed_minor),
    -- The last line of defence against over-commitment, whatever the application code does.
    CONSTRAINT committed_within_budget CHECK (committed_minor - released_minor <= budget_minor),
    -- Only money still committed can be paid out.
    CONSTRAINT disbursed_within_outstanding
        CHECK (disbursed_minor <= committed_minor - released_minor)
);
CREATE INDEX budget_ledgers_year ON budget_ledgers (year, funding_line);

-- One commitment per application; released (not deleted) when the grant lapses.
CREATE TABLE budget_commitments (
    application_id  uuid        PRIMARY KEY,
    funding_line    text        NOT NULL,
    year            integer     NOT NULL,
    currency        text        NOT NULL,
    amount_minor    bigint      NOT NULL CHECK (amount_minor > 0),
    -- Paid out of this commitment so far (written by the payments work that follows).
    disbursed_minor bigint      NOT NULL DEFAULT 0 CHECK (disbursed_minor >= 0),
    -- Given back to the budget: what was not paid out when the commitment was released.
    released_minor  bigint      NOT NULL DEFAULT 0 CHECK (released_minor >= 0),
    status          text        NOT NULL DEFAULT 'committed'
                                CHECK (status IN ('committed', 'released')),
    release_reason  text,
    committed_at    timestamptz NOT NULL DEFAULT now(),
    released_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (funding_line, year) REFERENCES budget_ledgers (funding_line, year),
    CHECK (disbursed_minor + released_minor <= amount_minor),
    CHECK ((status = 'released') = (released_at IS NOT NULL)),
    CHECK (status = 'released' OR (released_minor = 0 AND release_reason IS NULL))
);
CREATE INDEX budget_commitments_ledger ON budget_commitments (funding_line, year);

-- The ledger's totals are kept by the database from the commitments, in the same statement,
-- so they are the commitments' sums at every moment (and the ledger's CHECKs apply to them).
-- It also refuses a commitment in another currency than its ledger's: currencies never mix.
CREATE FUNCTION budget_commitments_to_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'budget commitments are never deleted; release them instead';
    END IF;
    IF TG_OP = 'INSERT' THEN
        UPDATE budget_ledgers
           SET committed_minor = committed_minor + NEW.amount_minor,
               disbursed_minor = disbursed_minor + NEW.disbursed_minor,
               released_minor  = released_minor + NEW.released_minor,
               updated_at = now()
         WHERE funding_line = NEW.funding_line AND year = NEW.year AND currency = NEW.currency;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'commitment in % does not match the currency of ledger % %',
                NEW.currency, NEW.funding_line, NEW.year;
        END IF;
        RETURN NULL;
    END IF;
    IF (NEW.application_id, NEW.funding_line, NEW.year, NEW.currency, NEW.amount_minor)
       IS DISTINCT FROM
       (OLD.application_id, OLD.funding_line, OLD.year, OLD.currency, OLD.amount_minor) THEN
        RAISE EXCEPTION 'a commitment''s application, ledger, currency and amount never change';
    END IF;
    IF OLD.status = 'released' AND NEW.status <> 'released' THEN
        RAISE EXCEPTION 'a released commitment is never committed again';
    END IF;
    UPDATE budget_ledgers
       SET disbursed_minor = disbursed_minor + NEW.disbursed_minor - OLD.disbursed_minor,
           released_minor  = released_minor + NEW.released_minor - OLD.released_minor,
           updated_at = now()
     WHERE funding_line = NEW.funding_line AND year = NEW.year;
    RETURN NULL;
END $$;
CREATE TRIGGER budget_commitments_to_ledger
    AFTER INSERT OR UPDATE OR DELETE ON budget_commitments
    FOR EACH ROW EXECUTE FUNCTION budget_commitments_to_ledger();

-- A ledger's identity and currency are fixed once opened (its commitments are in it).
CREATE FUNCTION budget_ledgers_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.funding_line, NEW.year, NEW.currency)
       IS DISTINCT FROM (OLD.funding_line, OLD.year, OLD.currency) THEN
        RAISE EXCEPTION 'a ledger''s funding line, year and currency never change';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER budget_ledgers_fixed BEFORE UPDATE ON budget_ledgers
    FOR EACH ROW EXECUTE FUNCTION budget_ledgers_fixed();
