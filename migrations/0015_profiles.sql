-- Netsoc's account fields (docs/accounts.md), kept by the `users` projection from
-- `user.profile.changed` events. Users created before have none: empty names, no key,
-- unverified, never renewed.
ALTER TABLE users
    ADD COLUMN first_name text NOT NULL DEFAULT '',
    ADD COLUMN last_name  text NOT NULL DEFAULT '',
    ADD COLUMN ssh_key    text NOT NULL DEFAULT '',
    ADD COLUMN verified   boolean NOT NULL DEFAULT false,
    ADD COLUMN renewed    timestamptz;
