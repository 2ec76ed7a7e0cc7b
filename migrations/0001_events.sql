-- The append-only event log: the single source of truth.
CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction: readers tailing the log order by (transaction_id, position)
    -- and stop below pg_snapshot_xmin, so an event that commits late is never skipped.
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream          text        NOT NULL,
    version         bigint      NOT NULL CHECK (version > 0),
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL,
    prev_hash       text        NOT NULL,
    hash            text        NOT NULL,
    -- One writer per stream: a second writer at the same version fails with 23505.
    CONSTRAINT events_stream_version UNIQUE (stream, version)
);
CREATE INDEX events_commit_order ON events (transaction_id, position);

-- Nothing updates or deletes an event. (A superuser can still disable this trigger; the hash
-- chain is what makes such tampering visible.)
CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Usernames are unique across all workspaces (case-insensitive); reserved in the same
-- transaction as the event that claims them.
CREATE TABLE unique_usernames (
    username_lower text PRIMARY KEY,
    user_id        text NOT NULL
);
CREATE INDEX unique_usernames_user ON unique_usernames (user_id);

-- Requests already applied, by request id: a redelivery is answered from here. The stored
-- response has every one-time secret removed.
CREATE TABLE processed_requests (
    request_id  text PRIMARY KEY,
    operation   text        NOT NULL,
    response    jsonb       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Ed25519 signing keys. The only place private keys exist; never in events.
CREATE TABLE signing_keys (
    kid         text PRIMARY KEY,
    public_key  bytea       NOT NULL,
    private_key bytea       NOT NULL,
    created     timestamptz NOT NULL,
    retired     timestamptz,
    valid_until timestamptz
);
