-- When each user was last changed (Netsoc's `meta.updated`, issue 18): the time of the user's
-- last event other than its deletion, kept by the users projection from now on. Existing rows
-- take it from the log.
ALTER TABLE users ADD COLUMN updated timestamptz;
UPDATE users u SET updated = coalesce(
    (SELECT max(e.recorded_at) FROM events e
      WHERE e.stream = 'workspace:' || u.workspace AND e.payload->>'user_id' = u.id
        AND e.event_type LIKE 'user.%'),
    u.created);
ALTER TABLE users ALTER COLUMN updated SET NOT NULL;
