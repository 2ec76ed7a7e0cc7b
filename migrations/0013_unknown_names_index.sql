-- The names logins that found no user left before migration 11, which iamd digests and erases
-- at every start (`authn_audit::digest_unknown_usernames`): indexed so that the check reads an
-- index that is empty once they are digested, not the whole table. New rows never match
-- (a name that finds no user is no longer written), so the index costs writes nothing.
CREATE INDEX authentications_unknown_names ON authentications (id)
    WHERE operation = 'login' AND user_id IS NULL AND username IS NOT NULL;
