-- There is always an enabled administrator (docs/API.md §8.5).
--
-- A demotion or disable locks every enabled administrator (FOR NO KEY UPDATE, in id order) in
-- the statement that changes the row (sql/queries/users.sql, update_user_flags), and refuses
-- the change when no other enabled administrator remains. This index makes that lock an index
-- scan over the administrators only, in id order, however many users there are.
CREATE INDEX users_enabled_admins_idx ON users (id) WHERE admin AND NOT disabled;
