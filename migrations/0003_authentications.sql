-- The authentication audit (docs/authentication-audit.md): one row per login and
-- resolve-api-key outcome, and per failed HTTP bearer authentication. Written in batches by
-- a background writer (src/audit/authentications.rs), never on a request's path. Never a
-- password, an API key or any hash: `key_id` is the key's public id, `username` the name
-- a login attempted.
CREATE TABLE authentications (
    -- Commit order: the writer inserts under LOCK TABLE ... IN EXCLUSIVE MODE, so ids become
    -- visible in increasing order and a reader paging with `id > after` never skips a row.
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- When the outcome was decided (not when the row was written).
    at         timestamptz NOT NULL,
    outcome    text        NOT NULL CHECK (outcome IN ('success', 'failure')),
    -- Why (a bucket for auditors only; callers always get the one auth-failed).
    reason     text        NOT NULL,
    credential text        NOT NULL CHECK (credential IN ('password', 'api-key', 'jwt')),
    operation  text        NOT NULL CHECK (operation IN ('login', 'resolve-api-key', 'http-bearer')),
    workspace  text,
    user_id    text,
    key_id     text,
    username   text,
    -- The client's address when the transport knows it (the HTTP peer); NULL over Kafka.
    client     text,
    source     text        NOT NULL,
    request_id text
);
CREATE INDEX authentications_at ON authentications (at);
CREATE INDEX authentications_user_at ON authentications (user_id, at);
