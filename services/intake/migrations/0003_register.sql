-- The public project register: a read model of funded projects, projected from the events
-- on the lifecycle topic (services/intake/register.py holds the rules). One row per
-- application, written by the "intake.register" consumer, idempotent through the inbox.
-- Only what the public record shows is kept: never the contact person (name, e-mail,
-- phone), never the organisation number. A row is public once the grant agreement is
-- accepted (or the grant closed) and never when the grant lapsed.
CREATE TABLE register (
    application_id      uuid        PRIMARY KEY,
    -- The project facts from application.submitted; all NULL until it arrives
    -- (events may come out of order), all set together when it does.
    code                text,
    title               text,
    funding_line        text,
    objective           text,
    main_activities     text[]      NOT NULL DEFAULT '{}',
    period_start        date,
    period_end          date,
    total_minor         bigint      CHECK (total_minor >= 0),
    total_currency      text        CHECK (total_currency IN ('NOK', 'EUR')),
    lead_partner_name   text,
    lead_partner_country text,
    -- [{"name": ..., "country": ...}] in the application's order.
    partners            jsonb       NOT NULL DEFAULT '[]',
    -- Programme funding: approved (decision.made), granted (agreement.accepted), paid
    -- (grant.closed); amounts in integer minor units, each with its currency.
    decided_minor       bigint      CHECK (decided_minor >= 0),
    decided_currency    text        CHECK (decided_currency IN ('NOK', 'EUR')),
    granted_minor       bigint      CHECK (granted_minor >= 0),
    granted_currency    text        CHECK (granted_currency IN ('NOK', 'EUR')),
    paid_minor          bigint      CHECK (paid_minor >= 0),
    paid_currency       text        CHECK (paid_currency IN ('NOK', 'EUR')),
    accepted_at         timestamptz,
    lapsed_at           timestamptz,
    closed_at           timestamptz,
    -- The latest submitted report's results (not public), the approved report's results,
    -- and the results grant.closed carries (authoritative).
    report_results      text,
    report_submitted_at timestamptz,
    approved_results    text,
    closed_results      text,
    -- Written from the projection rules with every change; the HTTP register reads only these.
    public              boolean     NOT NULL DEFAULT false,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((total_minor IS NULL) = (total_currency IS NULL)),
    CHECK ((decided_minor IS NULL) = (decided_currency IS NULL)),
    CHECK ((granted_minor IS NULL) = (granted_currency IS NULL)),
    CHECK ((paid_minor IS NULL) = (paid_currency IS NULL)),
    CHECK (NOT public OR (code IS NOT NULL AND lapsed_at IS NULL))
);
CREATE INDEX register_public_code ON register (code) WHERE public;
CREATE INDEX register_public_order ON register (period_start DESC, code) WHERE public;
