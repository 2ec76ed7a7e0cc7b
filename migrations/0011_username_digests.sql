-- A login naming no user keeps a keyed digest of the name, never the name (issue 15): it
-- may be a password typed into the username field. HMAC-SHA256 under the digest key of
-- `server_keys`, hex. Names kept before are digested (and erased) by iamd at start, since
-- the key is not SQL's to use.
ALTER TABLE authentications ADD COLUMN username_digest text;
