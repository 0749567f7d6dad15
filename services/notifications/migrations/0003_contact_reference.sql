-- What every message names: the application's reference and title (not personal data).
-- Null for contacts recorded before this migration: messages then name the application id.
ALTER TABLE contacts
    ADD COLUMN external_ref text,
    ADD COLUMN title        text;
