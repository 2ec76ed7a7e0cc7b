-- Snapshots of workspace state: a CACHE of replaying a stream up to `version`, never part of
-- the audited history (`events` stays the only truth; nothing here is hash-chained, and
-- `iamd audit` never reads it). An actor uses a snapshot only when `format` is the one its
-- code writes and `hash` is the hash of the stream's event at `version`; otherwise it replays
-- the whole stream. Rows may be deleted at any time (the next load replays and writes anew).
-- `state` holds what the events hold, password hashes included: protect it like `events`.
CREATE TABLE snapshots (
    stream   text        PRIMARY KEY,
    version  bigint      NOT NULL CHECK (version > 0),
    hash     text        NOT NULL,
    format   integer     NOT NULL,
    state    jsonb       NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now()
);
