-- Usernames compare by their PRECIS key (issue 15, src/domain/username.rs): RFC 8265
-- UsernameCaseMapped and full case folding, not lower(). The reservation table holds the key
-- and is the only place uniqueness is enforced; users keep their display form. The keys of
-- the existing reservations are computed by iamd right after this file (the profile is not
-- SQL's): `projections::uniqueness::rekey`, which reports any two users whose names now
-- compare equal and merges nothing.
ALTER TABLE unique_usernames RENAME COLUMN username_lower TO username_key;
DROP INDEX users_username_lower;
