-- Successful resolve-api-key attempts of one key from one client and source that the writer
-- takes in one batch are stored as one record (audit.authentications.coalesce_resolves):
-- `count` says how many attempts it stands for, `last_at` when the last of them began
-- (NULL for a single attempt). Every other record has count 1.
ALTER TABLE authentications
    ADD COLUMN count integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    ADD COLUMN last_at timestamptz,
    ADD CONSTRAINT authentications_last_at CHECK ((count = 1) = (last_at IS NULL));
