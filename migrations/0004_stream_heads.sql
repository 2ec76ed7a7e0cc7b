-- The head of every stream: its last version and that event's hash, kept by the database on
-- every insert into `events`. A per-stream hash chain cannot show that its LAST events were
-- deleted (what remains is still a valid chain); `iamd audit verify` compares each stream's
-- end with this anchor, and also notices a stream that vanished whole.
CREATE TABLE stream_heads (
    stream  text PRIMARY KEY,
    version bigint NOT NULL,
    hash    text   NOT NULL
);

INSERT INTO stream_heads (stream, version, hash)
SELECT DISTINCT ON (stream) stream, version, hash FROM events ORDER BY stream, version DESC;

-- Only a later version moves a head (an insert below the head, which only tampering can
-- produce, leaves it where it was).
CREATE FUNCTION events_move_stream_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stream_heads (stream, version, hash) VALUES (NEW.stream, NEW.version, NEW.hash)
    ON CONFLICT (stream) DO UPDATE SET version = EXCLUDED.version, hash = EXCLUDED.hash
        WHERE stream_heads.version < EXCLUDED.version;
    RETURN NULL;
END $$;
CREATE TRIGGER events_stream_head AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_move_stream_head();

-- Heads change only through that trigger. (As with `events`, a superuser can disable this;
-- then the chain and the heads must both be forged consistently, and still `audit verify`
-- recomputes every hash.)
CREATE FUNCTION stream_heads_follow_events_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'stream_heads are written only by inserts into events (% refused)', TG_OP;
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER stream_heads_guard BEFORE INSERT OR UPDATE OR DELETE ON stream_heads
    FOR EACH ROW EXECUTE FUNCTION stream_heads_follow_events_only();
CREATE TRIGGER stream_heads_no_truncate BEFORE TRUNCATE ON stream_heads
    FOR EACH STATEMENT EXECUTE FUNCTION stream_heads_follow_events_only();
