-- The address an email change link moves the account to (only on `change_email` links):
-- the link goes to that address, and following it proves the person reads it.
ALTER TABLE email_tokens ADD COLUMN new_email TEXT;
