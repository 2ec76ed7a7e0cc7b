-- Integer user ids (Netsoc's `id`, docs/netsoc.md): allocated from a sequence, so never
-- reused, and recorded in `user.created` (or `user.numbered` for users created before), so a
-- rebuild or a replay keeps them. The read table's column is unique; NULL until numbered.
CREATE SEQUENCE user_numbers AS integer START 1;
ALTER TABLE users ADD COLUMN number integer UNIQUE;
